// Restart after SIGKILL, for real: the daemon (child process) on driver-loopback, where the "VM" is
// this machine and the bundled crunch-run runs real commands detached into their own sessions, so
// they outlive the daemon. A second daemon on the same config creates a new loopback instance
// (loopback lists only instances its own process created), finds the running containers there
// with `crunch-run --list`, and must let them finish: none killed, none started again.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { logLines } from "../demo/containers.js";
import { runnerBundlePath } from "../demo/paths.js";
import {
  instances,
  mgmt,
  startDaemon,
  startPeerWithConfig,
  stopStack,
  submit,
  waitListening,
  type ApiPeer,
  type Daemon,
  type TestConfig,
} from "./harness.js";

/** Containers running at once on the one loopback "VM". */
const N = 4;
const RUNNER = runnerBundlePath();

describe("restart after SIGKILL on loopback", () => {
  let peer: ApiPeer;
  let cfg: TestConfig;
  let lockDir: string;
  /** The containers' commands run until this file exists, however slow the machine. */
  let release: string;
  const daemons: Daemon[] = [];
  const uuids: string[] = [];

  beforeAll(async () => {
    ({ peer, cfg } = await startPeerWithConfig({
      containers: { RuntimeEngine: "process" },
      cloudVMs: {
        Driver: "loopback",
        DriverParameters: {},
        // The bundled runner, installed on the "VM" as the dispatcher would on a real one.
        DeployRunnerBinary: RUNNER,
        MaxInstances: N,
        TimeoutBooting: "20s",
        TimeoutProbe: "20s",
        TimeoutIdle: "2s",
      },
      // One type (loopback allows no more) sized so every container fits at once, whatever
      // this machine's CPU count: the implicit `localhost` type has only as many VCPUs as the host.
      instanceTypes: {
        localhost: {
          ProviderType: "localhost",
          VCPUs: N,
          RAM: "2GiB",
          IncludedScratch: "10GB",
          Price: 1,
        },
      },
    }));
    lockDir = path.join(cfg.dir, "lock");
    fs.mkdirSync(lockDir);
    release = path.join(cfg.dir, "release");
  });

  afterAll(async () => {
    // DISPATCH_E2E_KEEP=DIR keeps the daemons' logs and crunch-run's lock directory there.
    const keep = process.env["DISPATCH_E2E_KEEP"];
    if (keep !== undefined && lockDir !== undefined) {
      daemons.forEach((d, i) => fs.writeFileSync(path.join(keep, `daemon${i}.log`), d.stderr()));
      fs.cpSync(lockDir, path.join(keep, "lock"), { recursive: true });
    }
    if (release !== undefined) fs.writeFileSync(release, "");
    for (const d of daemons) if (d.child.exitCode === null) await d.stop();
    // Whatever a failed run left behind is stopped, so no sleep outlives the test.
    for (const u of listRunning(lockDir)) crunchRun(lockDir, ["--kill", "9", u]);
    await stopStack({ peer, cfg });
  });

  function start(): Daemon {
    const d = startDaemon(cfg.path, { CRUNCH_RUN_LOCK_DIR: lockDir });
    daemons.push(d);
    return d;
  }

  async function states(): Promise<Map<string, { state: string; exit_code: number | null }>> {
    const page = await peer.client.containers.list({
      filters: [["uuid", "in", uuids]],
      select: ["uuid", "state", "exit_code"],
      limit: N,
    });
    return new Map(page.items.map((c) => [c.uuid, c]));
  }

  let first: Daemon;
  let second: Daemon;

  it("the runners outlive a SIGKILLed daemon", async () => {
    first = start();
    await waitListening(first);
    // The start-up log says which runner the VMs run.
    expect(first.logs().find((l) => l.msg.startsWith("crunch-run on the VMs: "))).toMatchObject({
      Runner: "bundled",
      DeployRunnerBinary: RUNNER,
    });
    for (let i = 0; i < N; i++) {
      uuids.push(
        await submit(
          peer,
          ["sh", "-c", `echo start; while [ ! -e ${release} ]; do sleep 0.1; done; echo end`],
          {
            // What the bundled runner can run: an image by name (not from Keep), a tmp output.
            container_image: "arvados/jobs",
            runtime_constraints: { vcpus: 1, ram: 64 << 20 },
            mounts: { "/out": { kind: "tmp", capacity: 1 << 20 } },
            output_path: "/out",
            cwd: "/out",
            // A cancelled container is not retried: a retry would run the command again.
            container_count_max: 1,
          },
        ),
      );
    }
    // All run at once, and each command has printed `start`.
    await vi.waitFor(
      async () => {
        const s = await states();
        expect(uuids.map((u) => s.get(u)?.state)).toEqual(Array(N).fill("Running"));
        for (const u of uuids) expect(await logLines(peer.client, u, "stdout")).toContain("start");
      },
      { timeout: 40_000, interval: 200 },
    );
    expect(listRunning(lockDir).sort()).toEqual([...uuids].sort());

    first.child.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    expect(listRunning(lockDir).sort(), "runners outlive the daemon").toEqual([...uuids].sort());

    second = start();
    await waitListening(second);
    expect(second.logs().filter((l) => l.msg === "crunch-run process started")).toEqual([]);
  }, 90_000);

  // The new daemon's loopback driver finds this machine's instance record, so the instance is
  // adopted (state unknown) and its first probe's --list finds the runners still going.
  it("its successor finds them with --list and lets each finish once", async () => {
    await vi.waitFor(
      () => {
        const detected = second
          .logs()
          .filter((l) => l.msg === "crunch-run process detected")
          .map((l) => String(l["ContainerUUID"]));
        expect(detected.sort()).toEqual([...uuids].sort());
      },
      { timeout: 40_000, interval: 100 },
    );
    // Only now may the commands end: the successor has found every one of them still running.
    fs.writeFileSync(release, "");
    await vi.waitFor(
      async () => {
        const s = await states();
        expect(uuids.every((u) => ["Complete", "Cancelled"].includes(s.get(u)?.state ?? ""))).toBe(
          true,
        );
      },
      { timeout: 40_000, interval: 200 },
    );
    const done = await states();
    expect(uuids.map((u) => done.get(u))).toMatchObject(
      uuids.map((uuid) => ({ uuid, state: "Complete", exit_code: 0 })),
    );
    // Never run twice: one `start` and one `end` each, and one Running update each.
    for (const u of uuids) {
      expect(await logLines(peer.client, u, "stdout"), `stdout of ${u}`).toEqual(["start", "end"]);
    }
    const running = new Map<string, number>();
    for (const up of peer.updates) {
      if (up.state === "Running") running.set(up.uuid, (running.get(up.uuid) ?? 0) + 1);
    }
    expect(uuids.map((u) => running.get(u))).toEqual(Array(N).fill(1));
    // Nobody cancelled anything, and only the first daemon started runners.
    const logs = [...first.logs(), ...second.logs()];
    expect(logs.filter((l) => l.msg.startsWith("cancelling container"))).toEqual([]);
    expect(second.logs().filter((l) => l.msg === "crunch-run process started")).toEqual([]);
    expect(running.size, "no container was started for a retry").toBe(N);
  }, 90_000);

  it("leaves no crunch-run process and no instance behind", async () => {
    // The commands have been released: they end within moments, whoever killed or forgot them.
    await vi.waitFor(
      async () => {
        expect(listRunning(lockDir)).toEqual([]);
        const queue = await mgmt(cfg.url, "arvados/v1/dispatch/containers");
        expect((queue.json() as { items: unknown[] | null }).items ?? []).toEqual([]);
      },
      { timeout: 40_000, interval: 200 },
    );
    const all = new Set(peer.updates.map((u) => u.uuid));
    expect(runnerProcesses([...all])).toEqual([]);
    await vi.waitFor(async () => expect(await instances(cfg.url)).toEqual([]), {
      timeout: 20_000,
      interval: 200,
    });
    expect(await second.stop()).toBe(0);
  }, 90_000);
});

function crunchRun(lockDir: string, args: string[]): string {
  try {
    return execFileSync(process.execPath, [RUNNER, ...args], {
      env: { ...process.env, CRUNCH_RUN_LOCK_DIR: lockDir },
      encoding: "utf8",
      timeout: 10_000,
    });
  } catch (err) {
    return (err as { stdout?: string }).stdout ?? "";
  }
}

/** The container UUIDs `crunch-run --list` reports on this machine for this lock directory. */
function listRunning(lockDir: string): string[] {
  return crunchRun(lockDir, ["--list"])
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((u) => u !== "" && u !== "broken");
}

/** PIDs of live processes whose argv names one of `uuids` (a runner for one of them). */
function runnerProcesses(uuids: readonly string[]): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (!uuids.some((u) => argv.includes(u))) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") continue;
      out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
