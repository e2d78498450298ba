import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import type { Container } from "@dispatch-cloud/arvados-types";
import { startContainerApi, type ContainerApi } from "@dispatch-cloud/container-api";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { isAlive, lockPath } from "./locks.js";
import { goHolder, goList, goTryShared } from "./testing/go-peer.js";

// The bundled runner, exactly as the dispatcher deploys it, against the embedded container API.

const here = path.dirname(new URL(import.meta.url).pathname);
const bundle = path.resolve(here, "../dist/crunch-run.cjs");
const TOKEN = "systemroottoken0123456789abcdefghijklmnopqrstuvw";

let api: ContainerApi;
let client: ArvadosClient;
let lockDir: string;

beforeAll(async () => {
  const built = spawnSync(process.execPath, ["build.mjs"], {
    cwd: path.resolve(here, ".."),
    encoding: "utf8",
  });
  if (built.status !== 0) throw new Error(`building the runner bundle failed: ${built.stderr}`);
  api = await startContainerApi({ dbPath: ":memory:", systemRootToken: TOKEN, clusterId: "zzzzz" });
  client = new ArvadosClient({ apiHost: api.url, token: TOKEN });
});
afterAll(async () => {
  await api?.stop();
});
beforeEach(() => {
  lockDir = fs.mkdtempSync(path.join(os.tmpdir(), "crunch-run-it-"));
});

async function lockedContainer(
  command: string[],
  extra: { mounts?: Record<string, { kind: string }>; container_image?: string } = {},
): Promise<string> {
  const cr = await client.containerRequests.create({
    name: "runner test",
    state: "Committed",
    priority: 1,
    container_image: extra.container_image ?? "arvados/jobs",
    command,
    output_path: "/out",
    cwd: "/out",
    mounts: { "/out": { kind: "tmp", capacity: 1 << 20 }, ...extra.mounts },
    runtime_constraints: { vcpus: 1, ram: 1 << 26 },
  });
  const uuid = cr.container_uuid!;
  await client.containers.lock(uuid);
  return uuid;
}

async function crunchRun(args: string[], stdin?: string) {
  const child = execFile(process.execPath, [bundle, ...args], {
    env: { ...process.env, CRUNCH_RUN_LOCK_DIR: lockDir },
    encoding: "utf8",
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  else child.stdin!.end();
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: string) => (stdout += d));
    child.stderr!.on("data", (d: string) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function stdinConfig(): string {
  return JSON.stringify({
    Env: { ARVADOS_API_HOST: api.url, ARVADOS_API_TOKEN: TOKEN, InstanceType: "{}\n" },
    KeepBuffers: 0,
    EC2SpotCheck: false,
    Cluster: null,
  });
}

async function finalState(uuid: string): Promise<Container> {
  return vi.waitFor(
    async () => {
      const c = await client.containers.get(uuid);
      if (c.state !== "Complete" && c.state !== "Cancelled") throw new Error(`still ${c.state}`);
      return c;
    },
    { timeout: 20_000, interval: 50 },
  );
}

async function logText(uuid: string, eventType: string): Promise<string> {
  const logs = await client.logs.list({
    filters: [
      ["object_uuid", "=", uuid],
      ["event_type", "=", eventType],
    ],
    order: ["id asc"],
  });
  return logs.items.map((l) => l.properties.text ?? "").join("");
}

describe("crunch-run against the container API", () => {
  it("detaches, runs the command, logs its output and completes with its exit code", async () => {
    const uuid = await lockedContainer(["sh", "-c", "echo Hello, Crunch!; echo oops >&2; exit 3"]);
    const detached = await crunchRun(
      ["--detach", "--stdin-config", "--runtime-engine=process", uuid],
      stdinConfig(),
    );
    expect(detached.code).toBe(0);
    expect(JSON.parse(detached.stdout)).toMatchObject({ UUID: uuid, PID: expect.any(Number) });

    const done = await finalState(uuid);
    expect(done).toMatchObject({ state: "Complete", exit_code: 3 });
    expect(await logText(uuid, "stdout")).toBe("Hello, Crunch!\n");
    expect(await logText(uuid, "stderr")).toBe("oops\n");
    expect(await logText(uuid, "crunch-run")).toMatch(/container exited with code 3/);
    // The runner is gone and its lock free: --list clears the lock file and lists nothing.
    expect((await crunchRun(["--list"])).stdout).toBe("");
    expect(fs.existsSync(lockPath(lockDir, uuid))).toBe(false);
  });

  it("is listed while it runs, refuses a second runner, and ends Cancelled when killed", async () => {
    const uuid = await lockedContainer(["sleep", "600"]);
    const args = ["--detach", "--stdin-config", "--runtime-engine=process", uuid];
    expect((await crunchRun(args, stdinConfig())).code).toBe(0);
    await vi.waitFor(
      async () => expect((await client.containers.get(uuid)).state).toBe("Running"),
      {
        timeout: 20_000,
        interval: 50,
      },
    );
    expect((await crunchRun(["--list"])).stdout).toBe(`${uuid}\n`);

    const second = await crunchRun(args, stdinConfig());
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(
      `lock ${lockPath(lockDir, uuid)}: resource temporarily unavailable\n`,
    );

    const killed = await crunchRun(["--kill", "15", uuid]);
    expect(killed.code).toBe(0);
    expect(await finalState(uuid)).toMatchObject({ state: "Cancelled" });
  });

  it("survives the signals of --list probes from the moment --detach names it in the lock file", async () => {
    // Every `--list` sends SIGUSR2 to the PID in the lock file, and a probe may come while the
    // runner is still starting; a runner without its handler yet died silently of it, leaving
    // its container Locked (requeued) or Running (then cancelled) with nothing in its log.
    const uuid = await lockedContainer(["echo", "Hello, Crunch!"]);
    const detached = await crunchRun(
      ["--detach", "--stdin-config", "--runtime-engine=process", uuid],
      stdinConfig(),
    );
    expect(detached.code).toBe(0);
    const { PID } = JSON.parse(detached.stdout) as { PID: number };
    for (let i = 0; i < 5 && isAlive(PID); i++) process.kill(PID, "SIGUSR2");

    expect(await finalState(uuid)).toMatchObject({ state: "Complete", exit_code: 0 });
    expect(await logText(uuid, "stdout")).toBe("Hello, Crunch!\n");
  });

  it("a SIGTERM while the runner starts stops it with a word, never silently", async () => {
    const { uuid, PID } = await detachLong(["sleep", "6016"]);
    process.kill(PID, "SIGTERM");
    await vi.waitFor(() => expect(isAlive(PID)).toBe(false), { timeout: 20_000, interval: 20 });

    // Stopped before it set Running (the container stays Locked for the dispatcher to requeue)
    // or after (Cancelled); either way it said so, and its lock went with it.
    const log = fs.readFileSync(path.join(lockDir, `crunch-run-${uuid}.log`), "utf8");
    expect(log).toMatch(/caught signal SIGTERM/);
    expect(goTryShared(lockPath(lockDir, uuid))).toBe("free");
    expect(["Locked", "Cancelled"]).toContain((await client.containers.get(uuid)).state);
  });

  it("refuses a container it cannot run faithfully: Cancelled, never Running, with the reason", async () => {
    const uuid = await lockedContainer(["cat", "/in/data.txt"], {
      mounts: { "/in": { kind: "collection" } },
    });
    const detached = await crunchRun(
      ["--detach", "--stdin-config", "--runtime-engine=process", "-cgroup-root=/x", uuid],
      stdinConfig(),
    );
    expect(detached.code).toBe(0);
    const done = await finalState(uuid);
    expect(done.state).toBe("Cancelled");
    expect(done.started_at).toBeNull();
    expect(done.runtime_status.error).toBe(
      `dispatch-cloud's crunch-run cannot run this container faithfully: "collection" mount at "/in" (needs Keep). Use Arvados's crunch-run.`,
    );
    expect(done.runtime_status.errorDetail).toMatch(/DeployRunnerBinary/);
    const log = await logText(uuid, "crunch-run");
    expect(log).toMatch(/ignoring -cgroup-root=\/x \(this runner does not manage cgroups\)/);
    expect(log).toMatch(/"collection" mount at "\/in"/);
  });

  it("refuses the singularity engine in the container's log and runtime_status", async () => {
    const uuid = await lockedContainer(["echo", "hi"]);
    const detached = await crunchRun(
      ["--detach", "--stdin-config", "--runtime-engine=singularity", uuid],
      stdinConfig(),
    );
    expect(detached.code).toBe(0);
    const done = await finalState(uuid);
    expect(done).toMatchObject({ state: "Cancelled", started_at: null });
    expect(done.runtime_status.error).toMatch(/the singularity runtime engine/);
    expect(await logText(uuid, "crunch-run")).toMatch(/the singularity runtime engine/);
  });

  it("rejects an unsupported runtime engine with exit status 1", async () => {
    const res = await crunchRun(["--runtime-engine=podman", "zzzzz-dz642-000000000000009"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/unsupported RuntimeEngine "podman"/);
  });
});

describe("taking over from Arvados's crunch-run, and back", () => {
  it("records a container process killed under it as Complete with 137, and frees the lock", async () => {
    const command = ["sleep", "6018"];
    const { uuid } = await detachLong(command);
    await vi.waitFor(() => expect(processesRunning(command)).toHaveLength(1), {
      timeout: 20_000,
      interval: 50,
    });
    for (const pid of processesRunning(command)) process.kill(pid, "SIGKILL");
    expect(await finalState(uuid)).toMatchObject({ state: "Complete", exit_code: 137 });
    await vi.waitFor(() => expect(goTryShared(lockPath(lockDir, uuid))).toBe("free"), {
      timeout: 20_000,
      interval: 50,
    });
  });

  it("lists and kills a runner that Go's crunch-run left, by its lock", async () => {
    const uuid = "zzzzz-dz642-00000000000000g";
    const holder = await goHolder(lockDir, uuid);
    try {
      expect((await crunchRun(["--list"])).stdout).toBe(`${uuid}\n`);
      expect(await holder.nextLine()).toBe("usr2");
      const exited = new Promise((resolve) => holder.process.once("exit", resolve));
      expect((await crunchRun(["--kill", "15", uuid])).code).toBe(0);
      await exited;
      // Its lock is free now: the next --list clears the file and lists nothing.
      expect((await crunchRun(["--list"])).stdout).toBe("");
      expect(fs.existsSync(lockPath(lockDir, uuid))).toBe(false);
    } finally {
      holder.process.kill("SIGKILL");
    }
  });

  it("holds a lock Go's --list sees as running, then stale when only the container holds it", async () => {
    const command = ["sleep", "6017"];
    const { uuid, PID } = await detachLong(command);
    await vi.waitFor(
      async () => expect((await client.containers.get(uuid)).state).toBe("Running"),
      { timeout: 20_000, interval: 50 },
    );
    expect(fs.readFileSync(lockPath(lockDir, uuid), "utf8")).toBe(
      `{"UUID":"${uuid}","PID":${PID}}\n`,
    );
    expect(goTryShared(lockPath(lockDir, uuid))).toBe("held");
    expect(goList(lockDir)).toBe(`${uuid}\n`);

    // The runner dies without a word; the container's process, which inherited the lock, lives.
    process.kill(PID, "SIGKILL");
    // Until init reaps it, a zombie still takes signals, and Go's rule lists it as running.
    await vi.waitFor(() => expect(fs.existsSync(`/proc/${PID}`)).toBe(false), {
      timeout: 20_000,
      interval: 20,
    });
    expect(goList(lockDir)).toBe(`${uuid} stale\n`);
    expect((await crunchRun(["--list"])).stdout).toBe(`${uuid} stale\n`);

    // Once the container's process is gone too, the lock is free and the file is cleared.
    const running = processesRunning(command);
    expect(running).toHaveLength(1);
    for (const pid of running) process.kill(pid, "SIGKILL");
    await vi.waitFor(() => expect(goTryShared(lockPath(lockDir, uuid))).toBe("free"), {
      timeout: 20_000,
      interval: 50,
    });
    expect((await crunchRun(["--list"])).stdout).toBe("");
    expect(fs.existsSync(lockPath(lockDir, uuid))).toBe(false);
  });
});

/**
 * A locked container running `command` (a sleep no other test runs) under a detached runner
 * with the process engine; whatever is left of it is killed when the test ends.
 */
async function detachLong(command: string[]): Promise<{ uuid: string; PID: number }> {
  onTestFinished(() => {
    for (const pid of processesRunning(command)) process.kill(pid, "SIGKILL");
  });
  const uuid = await lockedContainer(command);
  const detached = await crunchRun(
    ["--detach", "--stdin-config", "--runtime-engine=process", uuid],
    stdinConfig(),
  );
  expect(detached.code).toBe(0);
  const { PID } = JSON.parse(detached.stdout) as { PID: number };
  return { uuid, PID };
}

/** PIDs of processes whose command line is exactly `argv`. */
function processesRunning(argv: readonly string[]): number[] {
  const want = `${argv.join("\0")}\0`;
  return fs.readdirSync("/proc").flatMap((name) => {
    if (!/^\d+$/.test(name)) return [];
    try {
      return fs.readFileSync(`/proc/${name}/cmdline`, "utf8") === want ? [Number(name)] : [];
    } catch {
      return [];
    }
  });
}
