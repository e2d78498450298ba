import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { killContainer } from "./kill.js";
import { listContainers } from "./list.js";
import {
  BROKEN_MARKER,
  LockHeldError,
  PRICES_FILE,
  acquireContainerLock,
  encodeProcInfo,
  lockPath,
  writeProcInfo,
} from "./locks.js";
import { goHolder, goList, goTryShared } from "./testing/go-peer.js";

// The lock-file protocol against Arvados's rules, with a separate process standing in for Go's
// crunch-run (flock(2) through Python's fcntl, as background.go takes it).

const UUID1 = "zzzzz-dz642-000000000000001";
const UUID2 = "zzzzz-dz642-000000000000002";
const UUID3 = "zzzzz-dz642-000000000000003";

let dir: string;
const children: ChildProcess[] = [];

function track<T extends { process: ChildProcess }>(h: T): T {
  children.push(h.process);
  return h;
}

async function deadPid(): Promise<number> {
  const child = spawn("true", { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid!;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crunch-run-locks-"));
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("--list, as Arvados's crunch-run lists", () => {
  it("lists a held lock whose runner lives, after sending it SIGUSR2", async () => {
    const holder = track(await goHolder(dir, UUID1));
    expect(listContainers(dir, null)).toEqual({ lines: [UUID1], errors: [], exitCode: 0 });
    expect(await holder.nextLine()).toBe("usr2");
  });

  it("reports a held lock whose recorded runner is dead as stale", async () => {
    track(await goHolder(dir, UUID1, await deadPid()));
    expect(listContainers(dir, null).lines).toEqual([`${UUID1} stale`]);
    expect(fs.existsSync(lockPath(dir, UUID1))).toBe(true);
  });

  it("deletes a lock file nobody holds, and prints nothing for it", () => {
    fs.writeFileSync(lockPath(dir, UUID1), encodeProcInfo({ UUID: UUID1, PID: process.pid }));
    expect(listContainers(dir, null).lines).toEqual([]);
    expect(fs.existsSync(lockPath(dir, UUID1))).toBe(false);
  });

  it("skips an empty lock file (a runner still starting) and keeps it", () => {
    fs.writeFileSync(lockPath(dir, UUID1), "");
    expect(listContainers(dir, null).lines).toEqual([]);
    expect(fs.existsSync(lockPath(dir, UUID1))).toBe(true);
  });

  it("prints broken in name order, and reports bogus procinfo on stderr", async () => {
    track(await goHolder(dir, UUID2));
    track(await goHolder(dir, UUID3, 0));
    fs.writeFileSync(path.join(dir, BROKEN_MARKER), "");
    fs.writeFileSync(path.join(dir, "unrelated.lock"), "x");
    const r = listContainers(dir, null);
    expect(r.lines).toEqual(["broken", UUID2]);
    expect(r.errors).toEqual([`${lockPath(dir, UUID3)}: bogus procinfo: {UUID:${UUID3} PID:0}`]);
    expect(r.exitCode).toBe(0);
  });

  it("prints the same lines as Go's --list for the same directory", async () => {
    track(await goHolder(dir, UUID1));
    track(await goHolder(dir, UUID2, await deadPid()));
    fs.writeFileSync(path.join(dir, BROKEN_MARKER), "");
    const ours = listContainers(dir, null).lines;
    expect(`${ours.join("\n")}\n`).toBe(goList(dir));
    expect(ours).toEqual(["broken", UUID1, `${UUID2} stale`]);
  });

  it("saves the price history given on stdin", () => {
    const prices = Buffer.from('[{"StartTime":"2026-01-01T00:00:00Z","Price":0.5}]');
    expect(listContainers(dir, prices).lines).toEqual([]);
    expect(fs.readFileSync(path.join(dir, PRICES_FILE))).toEqual(prices);
  });

  it("prints nothing when the lock directory does not exist yet", () => {
    expect(listContainers(path.join(dir, "missing"), null)).toEqual({
      lines: [],
      errors: [],
      exitCode: 0,
    });
  });
});

describe("the container lock, as Go's crunch-run sees it", () => {
  it("is refused while a Go-style runner holds it", async () => {
    track(await goHolder(dir, UUID1));
    expect(() => acquireContainerLock(dir, UUID1)).toThrow(
      new LockHeldError(`lock ${lockPath(dir, UUID1)}: resource temporarily unavailable`),
    );
  });

  it("is a real exclusive flock for as long as a descriptor holds it", async () => {
    const fd = acquireContainerLock(dir, UUID1);
    // A live process to be named (Go's --list sends it SIGUSR2, which would end this one).
    const runner = spawn("sleep", ["300"], { stdio: "ignore" });
    children.push(runner);
    await new Promise((resolve) => runner.once("spawn", resolve));
    writeProcInfo(fd, { UUID: UUID1, PID: runner.pid! });
    expect(goTryShared(lockPath(dir, UUID1))).toBe("held");
    expect(fs.readFileSync(lockPath(dir, UUID1), "utf8")).toBe(
      `{"UUID":"${UUID1}","PID":${runner.pid}}\n`,
    );
    expect(goList(dir)).toBe(`${UUID1}\n`);
    fs.closeSync(fd);
    expect(goTryShared(lockPath(dir, UUID1))).toBe("free");
    // Go's --list now judges it abandoned and deletes it.
    expect(goList(dir)).toBe("");
    expect(fs.existsSync(lockPath(dir, UUID1))).toBe(false);
  });

  it("replaces an abandoned lock file's content", () => {
    fs.writeFileSync(lockPath(dir, UUID1), encodeProcInfo({ UUID: UUID1, PID: 1 }));
    const fd = acquireContainerLock(dir, UUID1);
    fs.closeSync(fd);
    expect(fs.readFileSync(lockPath(dir, UUID1), "utf8")).toBe("");
  });
});

describe("--kill", () => {
  it("succeeds when there is no lock file", async () => {
    expect(await killContainer(dir, UUID1, 15)).toEqual({ exitCode: 0, message: null });
  });

  it("signals the recorded runner and reports it gone", async () => {
    const holder = track(await goHolder(dir, UUID1));
    const result = await killContainer(dir, UUID1, 15);
    expect(result).toEqual({
      exitCode: 0,
      message: `${UUID1}: pid ${holder.process.pid}: process exited`,
    });
  });

  it("fails while the runner is still starting (empty lock file), so it is tried again", async () => {
    fs.writeFileSync(lockPath(dir, UUID1), "");
    expect(await killContainer(dir, UUID1, 15)).toEqual({
      exitCode: 1,
      message: `decode ${lockPath(dir, UUID1)}: EOF`,
    });
  });

  it("refuses a lock file that names another container", async () => {
    fs.writeFileSync(lockPath(dir, UUID1), encodeProcInfo({ UUID: UUID2, PID: process.pid }));
    expect((await killContainer(dir, UUID1, 15)).message).toMatch(/bogus procinfo/);
  });

  it("fails when the process outlives the signal", async () => {
    // Signal 0 only checks existence: the runner stays, as one ignoring SIGTERM would.
    const holder = track(await goHolder(dir, UUID1));
    expect(await killContainer(dir, UUID1, 0)).toEqual({
      exitCode: 1,
      message: `${UUID1}: pid ${holder.process.pid}: sent signal 0 (signal 0) but process is still alive`,
    });
  });
});
