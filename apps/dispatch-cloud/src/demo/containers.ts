import type { ArvadosClient } from "@dispatch-cloud/arvados-client";
import { containerRequest, DEFAULT_IMAGE, type SubmitSpec } from "../client/request.js";
import type { Observation } from "../client/watch.js";
import type { ManagementClient } from "./management.js";

export const HELLO_COMMAND = ["echo", "Hello, Crunch!"] as const;

/** The demo's containers: small enough for any machine's `localhost` type. */
export const DEMO_SPEC: SubmitSpec = {
  command: HELLO_COMMAND,
  priority: 1,
  image: DEFAULT_IMAGE,
  vcpus: 1,
  ram: 64 << 20,
  scratch: 1 << 20,
  preemptible: false,
  gpu: null,
};

/** Commits a container request for `command`, as `dispatch-cloud submit` does. */
export async function submitContainer(
  client: ArvadosClient,
  command: readonly string[],
  name: string,
  signal?: AbortSignal,
): Promise<{ requestUuid: string; containerUuid: string }> {
  const cr = await client.containerRequests.create(
    { ...containerRequest({ ...DEMO_SPEC, command }), name },
    signal === undefined ? undefined : { signal },
  );
  if (cr.container_uuid === null) {
    throw new Error(`container request ${cr.uuid} was committed but has no container`);
  }
  return { requestUuid: cr.uuid, containerUuid: cr.container_uuid };
}

/** Reads one container's state from the container API and the dispatcher's management API. */
export function containerObserver(
  client: ArvadosClient,
  management: ManagementClient,
  uuid: string,
): (signal?: AbortSignal) => Promise<Observation> {
  return async (signal) => {
    const opts = signal === undefined ? undefined : { signal };
    const [c, queue, instances] = await Promise.all([
      client.containers.get(uuid, { select: ["state", "exit_code", "runtime_status"] }, opts),
      management.containers(signal),
      management.instances(signal),
    ]);
    const entry = queue.find((e) => e.container.uuid === uuid);
    const own = instances.find((i) => i.running_container_uuids?.includes(uuid));
    const worker = own ?? instances[0];
    const error = c.runtime_status?.error;
    return {
      state: c.state,
      exitCode: c.exit_code,
      runtimeError: typeof error === "string" && error !== "" ? error : null,
      schedulingStatus: entry?.scheduling_status ?? "",
      workerState: worker?.worker_state ?? null,
    };
  };
}

/** The container's lines on one stream (crunch-run logs them as `properties.text`). */
export async function logLines(
  client: ArvadosClient,
  uuid: string,
  eventType: "stdout" | "stderr" | "crunch-run",
  signal?: AbortSignal,
): Promise<string[]> {
  const res = await client.logs.list(
    {
      filters: [
        ["object_uuid", "=", uuid],
        ["event_type", "=", eventType],
      ],
      order: ["id asc"],
      limit: 1000,
    },
    signal === undefined ? undefined : { signal },
  );
  return res.items.flatMap((l) =>
    typeof l.properties.text === "string" ? l.properties.text.replace(/\n$/, "").split("\n") : [],
  );
}
