import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { prepareDemo, startDemoCluster, type DemoCluster } from "./cluster.js";
import { runnerBundlePath, demoFiles } from "./paths.js";
import { runDemo } from "./run.js";
import { containerObserver, submitContainer } from "./containers.js";
import { systemWatchClock, watchContainer } from "./watch.js";

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
    const code = await runDemo({
      dataDir: tmpDir(),
      keepRunning: false,
      runnerPath: runner,
      out: (s) => (out += s),
      err: (s) => (err += s),
      signal: new AbortController().signal,
      timeoutMs: 45_000,
    });
    expect({ code, err }).toEqual({ code: 0, err: "" });
    expect(out).toContain("Final state: Complete, exit code 0");
    expect(out).toContain("  Hello, Crunch!\n");
    expect(out).toMatch(/running +container Running/);
  });
});
