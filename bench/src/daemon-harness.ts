// The daemon under benchmark: our container API as the controller (in this process) behind a
// recording proxy that timestamps every container update the stub's crunch-run sends, and the built
// daemon (`arvados-dispatch-cloud run`) as a child process on the stub cloud. The daemon is
// spawned, never imported: apps are not libraries.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import { generateEd25519KeyPair } from "@dispatch-cloud/cloud-driver-api";
import { startContainerApi } from "@dispatch-cloud/container-api";
import { startRecordingProxy } from "@dispatch-cloud/container-api/testing";
import { sleep } from "./lib.js";

const CLI = fileURLToPath(new URL("../../apps/dispatch-cloud/dist/cli.js", import.meta.url));

export interface ClusterOptions {
  /** Containers.CloudVMs (Driver stub is implied). */
  readonly cloudVMs: Record<string, unknown>;
  readonly instanceTypes: Record<string, unknown>;
  readonly signal: AbortSignal;
}

export interface BenchCluster {
  readonly client: ArvadosClient;
  /** The daemon's process id. */
  readonly pid: number | undefined;
  /** Container UUID → when crunch-run's first Running / Complete update reached the controller. */
  readonly running: ReadonlyMap<string, number>;
  readonly complete: ReadonlyMap<string, number>;
  /** The exit code or signal, once the daemon exited. */
  exitCode(): string | undefined;
  /** Everything the daemon wrote. */
  log(): string;
  /** The daemon's VmRSS and VmHWM in bytes (0 once it has exited). */
  memory(): { rss: number; hwm: number };
  /** GET a management API path with the management token. */
  mgmt(pathAndQuery: string): Promise<string>;
  /** Commit a container request for one `vcpus`-VCPU container; resolves with its container UUID. */
  submit(name: string, vcpus?: number): Promise<string | undefined>;
  /** warn/error log messages of the daemon with their counts, most frequent first. */
  complaints(limit?: number): [string, number][];
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export async function startBenchCluster(o: ClusterOptions): Promise<BenchCluster> {
  // Fresh tokens per run: the InstanceSetID (and the daemon's host-wide lock) derives from the
  // SystemRootToken, so a fixed one would collide with other dispatchers on this machine.
  const token = `bench${randomBytes(20).toString("hex")}`;
  const mgmtToken = `mgmt${randomBytes(20).toString("hex")}`;
  const api = await startContainerApi({
    dbPath: ":memory:",
    systemRootToken: token,
    clusterId: "zzzzz",
  });
  const proxy = await startRecordingProxy(api.url);
  const controller = proxy.url;
  // When each container was first set Running and Complete (successful updates only), kept up
  // to date from the proxy's record as they are read.
  const running = new Map<string, number>();
  const complete = new Map<string, number>();
  let seen = 0;
  const catchUp = (): void => {
    for (; seen < proxy.updates.length; seen++) {
      const u = proxy.updates[seen]!;
      if (u.status >= 300) continue;
      const first = u.state === "Running" ? running : u.state === "Complete" ? complete : null;
      if (first !== null && !first.has(u.uuid)) first.set(u.uuid, u.at);
    }
  };
  const client = new ArvadosClient({ apiHost: controller, token });

  const port = await freePort();
  const base = `http://127.0.0.1:${port}/`;
  const dir = mkdtempSync(path.join(tmpdir(), "bench-daemon-"));
  const configPath = path.join(dir, "config.yml");
  const config = {
    Clusters: {
      zzzzz: {
        SystemRootToken: token,
        ManagementToken: mgmtToken,
        Services: {
          Controller: { ExternalURL: controller },
          DispatchCloud: { InternalURLs: { [base]: {} } },
        },
        SystemLogs: { Format: "json", LogLevel: "warn" },
        Containers: {
          DispatchPrivateKey: generateEd25519KeyPair("dispatcher").privateKey,
          ReserveExtraRAM: 0,
          LocalKeepBlobBuffersPerVCPU: 0,
          CloudVMs: { Driver: "stub", ImageID: "image-1", ...o.cloudVMs },
        },
        InstanceTypes: o.instanceTypes,
      },
    },
  };
  // JSON is YAML.
  writeFileSync(configPath, JSON.stringify(config, null, 2));

  // For diagnosis, Node flags for the daemon, e.g. BENCH_DAEMON_NODE_ARGS="--cpu-prof
  // --cpu-prof-dir=/tmp/prof" or "--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=/tmp/heap".
  const nodeArgs = (process.env["BENCH_DAEMON_NODE_ARGS"] ?? "").split(/\s+/).filter(Boolean);
  const daemon = spawn(process.execPath, [...nodeArgs, CLI, "run", "--config", configPath], {
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  daemon.stdout.on("data", (d: Buffer) => (log += d.toString()));
  daemon.stderr.on("data", (d: Buffer) => (log += d.toString()));
  let exitCode: string | undefined;
  const exited = new Promise<string>((resolve) =>
    daemon.on("exit", (code, sig) => {
      exitCode = String(code ?? sig);
      resolve(exitCode);
    }),
  );

  const mgmt = async (p: string): Promise<string> => {
    const r = await fetch(new URL(p, base), {
      headers: { authorization: `Bearer ${mgmtToken}` },
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${p}: HTTP ${r.status}: ${text.slice(0, 200)}`);
    return text;
  };

  const stop = async () => {
    daemon.kill("SIGTERM");
    const stopped = await Promise.race([exited, sleep(15_000).then(() => undefined)]);
    if (stopped === undefined) daemon.kill("SIGKILL");
    await client.close();
    await proxy.stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  // Ready once the management API answers.
  const readyBy = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined) {
      await stop();
      throw new Error(`daemon exited (${exitCode}) before it was ready:\n${log.slice(-4000)}`);
    }
    if (
      await mgmt("_health/ping").then(
        () => true,
        () => false,
      )
    )
      break;
    if (Date.now() > readyBy || o.signal.aborted) {
      await stop();
      throw new Error(`daemon not ready after 30 s:\n${log.slice(-4000)}`);
    }
    await sleep(100);
  }

  return {
    client,
    pid: daemon.pid,
    get running() {
      catchUp();
      return running;
    },
    get complete() {
      catchUp();
      return complete;
    },
    exitCode: () => exitCode,
    log: () => log,
    memory() {
      try {
        const s = readFileSync(`/proc/${daemon.pid}/status`, "utf8");
        const kb = (k: string) =>
          Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? 0) * 1024;
        return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
      } catch {
        return { rss: 0, hwm: 0 };
      }
    },
    mgmt,
    async submit(name, vcpus = 1) {
      const cr = await client.containerRequests.create({
        name,
        container_image: "d41d8cd98f00b204e9800998ecf8427e+0",
        command: ["sleep", "1"],
        output_path: "/mnt/output",
        mounts: { "/mnt/output": { kind: "collection", writable: true } },
        runtime_constraints: { vcpus, ram: 128 * 2 ** 20, API: true },
        priority: 500,
        state: "Committed",
        use_existing: false,
      } as never);
      const uuid = (cr as { container_uuid?: string | null }).container_uuid;
      return typeof uuid === "string" ? uuid : undefined;
    },
    complaints(limit = 5) {
      const counts = new Map<string, number>();
      for (const line of log.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const l = JSON.parse(line) as { level?: string; msg?: string };
          // Arvados's JSON logs spell the level "warning".
          if (l.level === "warning" || l.level === "warn" || l.level === "error") {
            const k = `${l.level}: ${l.msg ?? ""}`;
            counts.set(k, (counts.get(k) ?? 0) + 1);
          }
        } catch {
          // not a log line
        }
      }
      return [...counts].sort((a, b) => b[1] - a[1]).slice(0, limit);
    },
    stop,
  };
}
