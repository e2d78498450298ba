import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort } from "@dispatch-cloud/arvados-types/testing";

/** azurite's well-known development account. */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface Azurite {
  /** Blob service URL including the account, e.g. `http://127.0.0.1:PORT/devstoreaccount1`. */
  readonly blobEndpoint: string;
  stop(): Promise<void>;
}

/**
 * Starts azurite's blob service on a free loopback port with its data in a fresh temp dir, and
 * resolves once it accepts connections.
 */
export async function startAzurite(signal?: AbortSignal): Promise<Azurite> {
  const port = await freePort();
  const location = await mkdtemp(join(tmpdir(), "azurite-"));
  const require = createRequire(import.meta.url);
  const main = join(
    dirname(require.resolve("azurite/package.json")),
    "dist",
    "src",
    "blob",
    "main.js",
  );
  const child: ChildProcess = spawn(
    process.execPath,
    [
      main,
      "--disableTelemetry",
      "--skipApiVersionCheck",
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(port),
      "--location",
      location,
      "--silent",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    await rm(location, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, child, () => stderr, signal);
  } catch (err) {
    await stop();
    throw err;
  }
  return { blobEndpoint: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`, stop };
}

/** Poll for a TCP connection, each attempt waiting for the previous to fail; no fixed sleeps. */
async function waitForPort(
  port: number,
  child: ChildProcess,
  stderr: () => string,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (signal?.aborted === true) throw new Error("aborted waiting for azurite");
    if (child.exitCode !== null)
      throw new Error(`azurite exited with ${child.exitCode}: ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => {
        sock.destroy();
        setTimeout(() => resolve(false), 25);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`azurite did not listen on ${port}: ${stderr()}`);
  }
}
