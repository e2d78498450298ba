import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, test, vi } from "vitest";
import { killRunners, prepareDemo, startDemoCluster, type DemoCluster } from "./cluster.js";
import { containerObserver, submitContainer } from "./containers.js";
import { demoFiles, runnerBundlePath } from "./paths.js";
import { runDemo } from "./run.js";
import type { Observation } from "../client/watch.js";

// The whole demo in this process: container API, dispatcher, loopback driver over real SSH, and
// the bundled crunch-run running real commands on this machine.

const runner = runnerBundlePath();
const dirs: string[] = [];
let cluster: DemoCluster | undefined;

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "dispatch-cloud-demo-"));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("demo in process", () => {
  test("hello world completes and logs its line", async () => {
    let out = "";
    let err = "";
    const dataDir = tmpDir();
    const code = await runDemo({
      dataDir,
      keepRunning: false,
      runnerPath: runner,
      out: (s) => (out += s),
      err: (s) => (err += s),
      signal: new AbortController().signal,
      timeoutMs: 45_000,
    });
    if (code !== 0)
      console.error(out, fs.readFileSync(path.join(dataDir, "dispatcher.log"), "utf8"));
    expect({ code, err }).toEqual({ code: 0, err: "" });
    expect(out).toContain("Final state: Complete, exit code 0");
    expect(out).toContain("  Hello, Crunch!\n");
    expect(out).toMatch(/queued +container Queued/);
    expect(out).toMatch(/complete +container Complete/);
  });

  test("a container killed through the management API while it runs ends Cancelled", async () => {
    const files = demoFiles(tmpDir());
    const c = await startDemoCluster(await prepareDemo(files, runner), { runnerPath: runner });
    cluster = c;
    const command = longCommand();
    const { containerUuid } = await submitContainer(c.client, command, "kill me");
    const observe = containerObserver(c.client, c.management, containerUuid);
    await until(observe, (o) => o.state === "Running");
    // crunch-run says Running just before it starts the command.
    await vi.waitFor(() => expect(processesRunning(command)).toHaveLength(1), { timeout: 10_000 });
    expect(fs.readdirSync(files.lockDir).filter((f) => f.endsWith(".lock"))).toHaveLength(1);

    await c.management.kill(containerUuid, "test");
    const end = await until(observe, (o) => o.state === "Cancelled" || o.state === "Complete");
    expect(end.state).toBe("Cancelled");
    await vi.waitFor(() => expect(processesRunning(command)).toEqual([]), { timeout: 10_000 });
    expect(await killRunners(files.lockDir, runner, c.logger)).toEqual([]);
  });

  test("stopping leaves no crunch-run behind, and the next run finds its data again", async () => {
    const dir = tmpDir();
    const files = demoFiles(dir);
    const first = await prepareDemo(files, runner);
    expect(first.created).toBe(true);
    const c = await startDemoCluster(first, { runnerPath: runner });
    cluster = c;
    const command = longCommand();
    const { containerUuid } = await submitContainer(c.client, command, "left running");
    await until(
      containerObserver(c.client, c.management, containerUuid),
      (o) => o.state === "Running",
    );
    await vi.waitFor(() => expect(processesRunning(command)).toHaveLength(1), { timeout: 10_000 });
    await c.stop();
    expect(processesRunning(command)).toEqual([]);
    expect(fs.readdirSync(files.lockDir).filter((f) => f.endsWith(".lock"))).toEqual([]);

    const again = await prepareDemo(files, runner);
    expect(again.created).toBe(false);
    expect(again.loaded.cluster.SystemRootToken).toBe(first.loaded.cluster.SystemRootToken);
    const c2 = await startDemoCluster(again, { runnerPath: runner });
    cluster = c2;
    const record = await c2.client.containers.get(containerUuid);
    expect(record.state).toBe("Cancelled");
  });
});

/** A long-running command no other test runs, so its processes can be found by argv. */
function longCommand(): string[] {
  return ["sleep", `600.${process.pid}${Date.now() % 100_000}`];
}

/** PIDs of processes whose argv is exactly `command`. */
function processesRunning(command: readonly string[]): number[] {
  const want = `${command.join("\0")}\0`;
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, "utf8") !== want) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") continue;
      out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function until(
  observe: () => Promise<Observation>,
  done: (o: Observation) => boolean,
): Promise<Observation> {
  return vi.waitFor(
    async () => {
      const o = await observe();
      if (!done(o)) throw new Error(`still ${o.state}`);
      return o;
    },
    { timeout: 30_000, interval: 100 },
  );
}
