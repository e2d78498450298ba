import type { ArvadosClient, Log } from "@dispatch-cloud/arvados-client";

/**
 * The log records crunch-run writes for a container, one event type per stream. The logs table
 * also holds audit records about the container (create, update, ...), which are not its log.
 */
export const LOG_STREAMS = [
  "crunch-run",
  "stdout",
  "stderr",
  "crunchstat",
  "hoststat",
  "arv-mount",
  "node",
  "container",
] as const;

const PAGE = 1000;

/**
 * Every log record of the container after record `afterId`, oldest first, page by page (by id,
 * so records written meanwhile are neither skipped nor repeated).
 */
export async function* logRecords(
  api: ArvadosClient,
  uuid: string,
  afterId: number,
  signal?: AbortSignal,
): AsyncGenerator<Log> {
  let last = afterId;
  for (;;) {
    const page = await api.logs.list(
      {
        filters: [
          ["object_uuid", "=", uuid],
          ["event_type", "in", LOG_STREAMS],
          ["id", ">", last],
        ],
        order: ["id asc"],
        limit: PAGE,
        count: "none",
      },
      signal ? { signal } : undefined,
    );
    // A server may cap a page below our limit: stop only at an empty page.
    if (page.items.length === 0) return;
    for (const record of page.items) {
      last = record.id;
      yield record;
    }
  }
}

/** A record's text as lines, each prefixed with its stream: `stdout  Hello, Crunch!`. */
export function logLines(record: Log): string[] {
  const text = record.properties.text;
  if (typeof text !== "string") return [];
  return text
    .replace(/\n$/, "")
    .split("\n")
    .map((line) => `${record.event_type.padEnd(10)} ${line}`);
}
