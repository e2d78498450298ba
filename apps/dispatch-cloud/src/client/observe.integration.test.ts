import net from "node:net";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import { startContainerApi, type ContainerApi } from "@dispatch-cloud/container-api";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { dispatcherStatus, priorityZeroStatus, watchRequest, type Retry } from "./observe.js";
import { containerRequest } from "./request.js";
import type { Target } from "./target.js";

// What `submit --wait` sees, against the embedded container API with the states driven by hand.
const TOKEN = "systemroottoken0123456789abcdef";
let api: ContainerApi;
let target: Target;

function targetWith(dispatchers: ArvadosClient[]): Target {
  const client = new ArvadosClient({ apiHost: api.url, token: TOKEN });
  return {
    api: client,
    tokenSource: "the test's token",
    dispatchers,
    managementTokenSource: "the test's ManagementToken",
    close: async () => {
      await client.close();
    },
  };
}

beforeEach(async () => {
  api = await startContainerApi({
    dbPath: ":memory:",
    systemRootToken: TOKEN,
    clusterId: "zzzzz",
    maxRetryAttempts: 3,
  });
  target = targetWith([]);
});
afterEach(async () => {
  await target.close();
  await api.stop();
});

async function submit() {
  const cr = await target.api.containerRequests.create(
    containerRequest({
      command: ["true"],
      priority: 1,
      image: "arvados/jobs",
      vcpus: 1,
      ram: 1 << 20,
      scratch: 1 << 20,
      preemptible: false,
      gpu: null,
    }),
  );
  return { request: cr.uuid, container: cr.container_uuid ?? "" };
}

/** The request's current container, cancelled as a dispatcher cancels it. */
async function cancelCurrent(request: string, why: string): Promise<string> {
  const { container_uuid: uuid } = await target.api.containerRequests.get(request);
  await target.api.containers.update(uuid ?? "", {
    state: "Cancelled",
    runtime_status: { error: why },
  });
  return uuid ?? "";
}

describe("watchRequest", () => {
  test("follows the request's newest attempt, even when attempts ended between two looks", async () => {
    const { request, container } = await submit();
    const retries: Retry[] = [];
    const watch = watchRequest(target, request, container, (r) => retries.push(r));
    expect((await watch.observe()).state).toBe("Queued");

    // All three attempts end before the next look: the request is Final on its third.
    const first = await cancelCurrent(request, "first");
    await cancelCurrent(request, "second");
    const third = await cancelCurrent(request, "third");
    expect((await target.api.containerRequests.get(request)).state).toBe("Final");

    const end = await watch.observe();
    expect(end).toMatchObject({ state: "Cancelled", runtimeError: "third" });
    expect(watch.current()).toBe(third);
    expect(retries.map((r) => [r.from, r.ended.runtimeError, r.to, r.attempt, r.max])).toEqual([
      [first, "first", third, 3, 3],
    ]);
  });

  test("a queued container nobody wants shows the dispatcher's priority-0 status", async () => {
    const { request, container } = await submit();
    await target.api.containerRequests.update(request, { priority: 0 });
    const watch = watchRequest(target, request, container, () => undefined);
    expect(await watch.observe()).toMatchObject({
      state: "Queued",
      schedulingStatus: priorityZeroStatus("Queued"),
    });
  });
});

describe("dispatcherStatus", () => {
  test("no dispatcher has it: empty; one cannot be reached: said in its place", async () => {
    const { container } = await submit();
    // The container API has no dispatch endpoints: 404, as a dispatcher without the container.
    const notQueued = new ArvadosClient({ apiHost: api.url, token: "m" });
    const closed = await closedPort();
    const unreachable = new ArvadosClient({ apiHost: `http://127.0.0.1:${closed}/`, token: "m" });
    expect(await dispatcherStatus(targetWith([notQueued]), container)).toBe("");
    expect(await dispatcherStatus(targetWith([notQueued, unreachable]), container)).toMatch(
      new RegExp(
        `^\\(dispatcher: cannot reach http://127\\.0\\.0\\.1:${closed}: connect ECONNREFUSED`,
      ),
    );
  });
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
