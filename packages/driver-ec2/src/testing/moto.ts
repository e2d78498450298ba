import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";
import { freePort } from "@dispatch-cloud/arvados-types/testing";

/** A moto EC2 API server on 127.0.0.1, started for tests. */
export interface MotoServer {
  /** `http://127.0.0.1:<port>`, for the `Endpoint` DriverParameter. */
  readonly endpoint: string;
  /** Forget every resource (POST /moto-api/reset). */
  reset(signal?: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

/** Credentials moto accepts; they are never valid anywhere else. */
export const MOTO_CREDENTIALS = { AccessKeyID: "testing", SecretAccessKey: "testing" } as const;
export const MOTO_REGION = "us-east-1";

const here = dirname(fileURLToPath(import.meta.url));
/** packages/driver-ec2/src/testing (or dist/testing) → the repository root. */
const repoRoot = resolve(here, "../../../..");

export function motoSitePackages(root: string = repoRoot): string {
  return join(root, ".peers/moto/usr/lib/python3/dist-packages");
}

/**
 * Start moto with Debian's python on a free port and wait until it answers HTTP. Throws, telling
 * how to install it, when `scripts/peers/moto.sh install` has not been run.
 */
export async function startMoto(
  options: { readyTimeoutMs?: number; repoRoot?: string } = {},
): Promise<MotoServer> {
  const site = motoSitePackages(options.repoRoot);
  if (!existsSync(join(site, "moto/server.py")) || !existsSync("/usr/bin/python3")) {
    throw new Error(`moto is not installed (no ${site}/moto): run scripts/peers/moto.sh install`);
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(
    "/usr/bin/python3",
    ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
    {
      env: { PATH: "/usr/bin:/bin", PYTHONPATH: site, PYTHONDONTWRITEBYTECODE: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    // Keep the start-up output for error messages; drop the request log after that.
    if (stderr.length < 8192) stderr += d;
  });
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  try {
    await waitReady(endpoint, child, exited, options.readyTimeoutMs ?? 30_000, () => stderr);
  } catch (err) {
    await kill(child, exited);
    throw err;
  }
  return {
    endpoint,
    async reset(signal?: AbortSignal) {
      const resp = await fetch(`${endpoint}/moto-api/reset`, {
        method: "POST",
        ...(signal ? { signal } : {}),
      });
      if (!resp.ok) throw new Error(`moto reset failed: HTTP ${resp.status}`);
      await resp.arrayBuffer();
    },
    stop: () => kill(child, exited),
  };
}

async function waitReady(
  endpoint: string,
  child: ChildProcess,
  exited: Promise<number | null>,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  for (;;) {
    if (gone || child.exitCode !== null) {
      throw new Error(`moto exited before answering (code ${child.exitCode}):\n${output()}`);
    }
    try {
      const resp = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      await resp.arrayBuffer();
      if (resp.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline)
      throw new Error(`moto did not answer on ${endpoint} within ${timeoutMs} ms:\n${output()}`);
    // Poll interval between readiness checks (the server gives no other signal).
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function kill(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}
