import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { killContainer } from "./kill.js";
import { listContainers } from "./list.js";
import { BROKEN_MARKER, PRICES_FILE, acquireLock, lockPath, writeProcInfo } from "./locks.js";

const UUID1 = "zzzzz-dz642-000000000000001";
const UUID2 = "zzzzz-dz642-000000000000002";

let dir: string;
const children: ChildProcess[] = [];

/** A real process that lives until signalled, standing in for a runner or a container. */
async function liveProcess(): Promise<number> {
  const child = spawn("sleep", ["300"], { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return child.pid!;
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

describe("--list", () => {
  it("lists live runners, reports stale locks and broken nodes, and removes abandoned locks", async () => {
    writeProcInfo(lockPath(dir, UUID1), { UUID: UUID1, PID: await liveProcess() });
    writeProcInfo(lockPath(dir, UUID2), {
      UUID: UUID2,
      PID: await deadPid(),
      ChildPID: await liveProcess(),
    });
    const abandoned = "zzzzz-dz642-000000000000003";
    writeProcInfo(lockPath(dir, abandoned), { UUID: abandoned, PID: await deadPid() });
    fs.writeFileSync(path.join(dir, BROKEN_MARKER), "");

    expect(listContainers(dir, null)).toEqual(["broken", UUID1, `${UUID2} stale`]);
    expect(fs.existsSync(lockPath(dir, abandoned))).toBe(false);
  });

  it("saves the price history given on stdin", () => {
    const prices = Buffer.from('[{"StartTime":"2026-01-01T00:00:00Z","Price":0.5}]');
    expect(listContainers(dir, prices)).toEqual([]);
    expect(fs.readFileSync(path.join(dir, PRICES_FILE))).toEqual(prices);
  });

  it("prints nothing when the lock directory does not exist yet", () => {
    expect(listContainers(path.join(dir, "missing"), null)).toEqual([]);
  });
});

describe("--kill", () => {
  it("succeeds when nothing runs", async () => {
    expect(await killContainer(dir, UUID1, 15)).toEqual({ exitCode: 0, message: null });
  });

  it("signals the runner and reports it gone", async () => {
    const pid = await liveProcess();
    const child = children.at(-1)!;
    const reaped = new Promise((resolve) => child.once("exit", resolve));
    writeProcInfo(lockPath(dir, UUID1), { UUID: UUID1, PID: pid });
    const result = killContainer(dir, UUID1, 15);
    await reaped;
    expect(await result).toMatchObject({ exitCode: 0 });
  });

  it("fails when the process ignores the signal", async () => {
    // Signal 0 only checks existence: the process stays alive, as one ignoring SIGTERM would.
    writeProcInfo(lockPath(dir, UUID1), { UUID: UUID1, PID: await liveProcess() });
    const result = await killContainer(dir, UUID1, 0);
    expect(result.exitCode).toBe(1);
    expect(result.message).toMatch(/but process is still alive/);
  });
});

describe("lock files", () => {
  it("refuse a second runner while the first lives, and replace an abandoned one", async () => {
    writeProcInfo(lockPath(dir, UUID1), { UUID: UUID1, PID: await liveProcess() });
    expect(() => acquireLock(dir, UUID1)).toThrow(/already running/);

    writeProcInfo(lockPath(dir, UUID2), { UUID: UUID2, PID: await deadPid() });
    const { fd } = acquireLock(dir, UUID2);
    fs.closeSync(fd);
    expect(fs.readFileSync(lockPath(dir, UUID2), "utf8")).toBe("");
  });
});
