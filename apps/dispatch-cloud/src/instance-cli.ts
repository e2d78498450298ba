/*
 * `dispatch-cloud instance list|hold|drain|run|kill`: the admin client of the management API,
 * with the output and exit codes of `arvados-server instance`.
 */
import type { InstanceView } from "@dispatch-cloud/arvados-types";

export interface AdminTarget {
  /** The dispatcher's InternalURLs. */
  readonly urls: readonly string[];
  readonly managementToken: string;
}

export interface AdminIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly fetch?: typeof fetch;
}

export const INSTANCE_LIST_HEADER =
  "instance\taddress\tstate\tidle-behavior\tconfig-type\tprovider-type\tprice\trunning-containers";

/** fetch says "fetch failed"; the cause says why (connection refused, ...). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}

function endpoint(base: string, path: string): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${path}`;
  return url;
}

/** Prints one tab-separated line per instance of every dispatcher. Returns the exit status. */
export async function listInstances(
  target: AdminTarget,
  options: { header: boolean },
  io: AdminIo,
): Promise<number> {
  const doFetch = io.fetch ?? fetch;
  if (options.header) io.stdout(`${INSTANCE_LIST_HEADER}\n`);
  for (const base of target.urls) {
    let items: InstanceView[] | null;
    try {
      const res = await doFetch(endpoint(base, "arvados/v1/dispatch/instances"), {
        headers: { Authorization: `Bearer ${target.managementToken}` },
      });
      const text = await res.text();
      try {
        items = (JSON.parse(text) as { items: InstanceView[] | null }).items;
      } catch (err) {
        io.stderr(
          `error decoding API response: ${describe(err)} (HTTP ${res.status} from ${base})\n`,
        );
        return 1;
      }
    } catch (err) {
      io.stderr(`error requesting instance list from ${base}: ${describe(err)}\n`);
      return 1;
    }
    for (const i of items ?? []) {
      const running = i.running_container_uuids ?? [];
      io.stdout(
        [
          i.instance || "-",
          i.address || "-",
          i.worker_state,
          i.idle_behavior,
          i.arvados_instance_type,
          i.provider_instance_type,
          i.price.toFixed(6),
          running.length > 0 ? running.join(",") : "-",
        ].join("\t") + "\n",
      );
    }
  }
  return 0;
}

export type InstanceAction = "hold" | "drain" | "run" | "kill";

/**
 * Asks every dispatcher to apply `action` to each instance until one answers 200. Prints
 * `<id>: <status line> (<host>)` per attempt on stderr; exit 1 if some id never succeeded.
 */
export async function instanceAction(
  target: AdminTarget,
  action: InstanceAction,
  ids: readonly string[],
  reason: string,
  io: AdminIo,
): Promise<number> {
  const doFetch = io.fetch ?? fetch;
  if (ids.length === 0) {
    io.stderr("usage error: no instance IDs provided\n");
    return 2;
  }
  const pending = new Set(ids);
  for (const base of target.urls) {
    for (const id of ids) {
      if (!pending.has(id)) continue;
      const url = endpoint(base, `arvados/v1/dispatch/instances/${action}`);
      url.searchParams.set("instance_id", id);
      url.searchParams.set("reason", action === "kill" ? reason : "");
      try {
        const res = await doFetch(url, {
          method: "POST",
          headers: { Authorization: `Bearer ${target.managementToken}` },
        });
        await res.arrayBuffer();
        io.stderr(`${id}: ${res.status} ${res.statusText} (${url.host})\n`);
        if (res.status === 200) pending.delete(id);
      } catch (err) {
        io.stderr(`${id}: ${describe(err)} (${url.host})\n`);
      }
    }
  }
  return pending.size === 0 ? 0 : 1;
}
