// Shared set-up for the end-to-end tests: the container API (in-process) behind a recording
// proxy, a generated config.yml, and the daemon as a child process running the built CLI.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import type { Logger } from "@dispatch-cloud/arvados-types";
import {
  createDriverRegistry,
  generateEd25519KeyPair,
  type DriverRegistry,
  type InstanceSet,
} from "@dispatch-cloud/cloud-driver-api";
import { freePort } from "@dispatch-cloud/arvados-types/testing";
import { loadConfig, type LoadedConfig } from "@dispatch-cloud/config";
import { createStubDriver, type StubCloud } from "@dispatch-cloud/driver-stub";
import { startContainerApi, type ContainerApi } from "@dispatch-cloud/container-api";
import { startRecordingProxy, type RecordedUpdate } from "@dispatch-cloud/container-api/testing";
import { createLogger } from "../logger.js";

export { freePort };

export const APP_DIR = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = path.join(APP_DIR, "dist/cli.js");
/** Each API peer gets its own SystemRootToken, hence its own InstanceSetID and dispatcher lock. */
const newToken = (): string => `systemroot${randomBytes(16).toString("hex")}`;
export const MANAGEMENT_TOKEN = "managementtoken0123456789abcdefghijklmnopqrs";
export const CLUSTER = "zzzzz";

/** The container API behind a proxy that records every container update it forwards. */
export interface ApiPeer {
  readonly api: ContainerApi;
  /** The cluster's SystemRootToken. */
  readonly token: string;
  /** The proxy's URL: what the dispatcher's config names as the controller. */
  readonly url: string;
  readonly updates: RecordedUpdate[];
  readonly client: ArvadosClient;
  stop(): Promise<void>;
}

export async function startApiPeer(): Promise<ApiPeer> {
  const token = newToken();
  const api = await startContainerApi({
    dbPath: ":memory:",
    systemRootToken: token,
    clusterId: CLUSTER,
  });
  const proxy = await startRecordingProxy(api.url);
  const url = proxy.url;
  const client = new ArvadosClient({ apiHost: url, token });
  return {
    api,
    token,
    url,
    updates: proxy.updates,
    client,
    async stop() {
      await client.close();
      await proxy.stop();
      await api.stop();
    },
  };
}

/** What a suite changes in the generated config. */
export interface ConfigChanges {
  readonly driverParameters?: Record<string, unknown>;
  readonly cloudVMs?: Record<string, unknown>;
  readonly containers?: Record<string, unknown>;
  readonly instanceTypes?: Record<string, unknown>;
  readonly cluster?: Record<string, unknown>;
}

export interface ConfigOptions extends ConfigChanges {
  readonly controllerUrl: string;
  readonly token: string;
  readonly port: number;
}

export interface TestConfig {
  readonly dir: string;
  readonly path: string;
  readonly url: string;
  readonly privateKey: string;
  cleanup(): void;
}

/** The default config's one instance type, `small`. */
export const SMALL_TYPE = {
  ProviderType: "p.small",
  VCPUs: 1,
  RAM: "2GiB",
  IncludedScratch: "100GB",
  Price: 0.1,
} as const;

/** Writes a config.yml (JSON is YAML) for the stub cloud with test-sized timeouts. */
export function writeConfig(o: ConfigOptions): TestConfig {
  const dir = mkdtempSync(path.join(tmpdir(), "dispatch-e2e-"));
  const key = generateEd25519KeyPair("dispatcher");
  const url = `http://127.0.0.1:${o.port}/`;
  const config = {
    Clusters: {
      [CLUSTER]: {
        SystemRootToken: o.token,
        ManagementToken: MANAGEMENT_TOKEN,
        Services: {
          Controller: { ExternalURL: o.controllerUrl },
          DispatchCloud: { InternalURLs: { [url]: {} } },
        },
        SystemLogs: { Format: "json", LogLevel: "info" },
        Containers: {
          DispatchPrivateKey: key.privateKey,
          ReserveExtraRAM: 0,
          LocalKeepBlobBuffersPerVCPU: 0,
          StaleLockTimeout: "2s",
          CloudVMs: {
            Driver: "stub",
            ImageID: "image-1",
            BootProbeCommand: "true",
            ProbeInterval: "100ms",
            PollInterval: "200ms",
            // Longer than a probe: a sync during a probe discards its result (as in Arvados).
            SyncInterval: "1s",
            TimeoutIdle: "1s",
            TimeoutBooting: "10s",
            TimeoutProbe: "3s",
            TimeoutShutdown: "1s",
            TimeoutSignal: "200ms",
            TimeoutTERM: "1s",
            MaxProbesPerSecond: 1000,
            DriverParameters: {
              APIScheme: "http",
              ContainerRunTime: "300ms",
              ...o.driverParameters,
            },
            ...o.cloudVMs,
          },
          ...o.containers,
        },
        InstanceTypes: o.instanceTypes ?? { small: SMALL_TYPE },
        ...o.cluster,
      },
    },
  };
  const file = path.join(dir, "config.yml");
  writeFileSync(file, JSON.stringify(config, null, 2));
  return {
    dir,
    path: file,
    url,
    privateKey: key.privateKey,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A config for `peer` as the controller, with the management API on a free port. */
export async function configFor(peer: ApiPeer, changes: ConfigChanges = {}): Promise<TestConfig> {
  return writeConfig({
    controllerUrl: peer.url,
    token: peer.token,
    port: await freePort(),
    ...changes,
  });
}

/** A suite's controller peer and config, and the daemon if the suite started one. */
export interface Stack {
  readonly peer: ApiPeer;
  readonly cfg: TestConfig;
  readonly daemon: Daemon;
}

/** The controller peer and a config pointing at it. */
export async function startPeerWithConfig(
  changes: ConfigChanges = {},
): Promise<Omit<Stack, "daemon">> {
  const peer = await startApiPeer();
  return { peer, cfg: await configFor(peer, changes) };
}

/** The controller peer, a config pointing at it, and the daemon on it, listening. */
export async function startStack(
  changes: ConfigChanges & { readonly env?: Record<string, string> } = {},
): Promise<Stack> {
  const { env, ...config } = changes;
  const { peer, cfg } = await startPeerWithConfig(config);
  const daemon = startDaemon(cfg.path, env);
  await waitListening(daemon);
  return { peer, cfg, daemon };
}

/** Stop what a suite started; any part may be missing if its set-up failed. */
export async function stopStack(s: Partial<Stack>): Promise<void> {
  await s.daemon?.stop();
  await s.peer?.stop();
  s.cfg?.cleanup();
}

export interface LogLine {
  readonly msg: string;
  readonly level: string;
  readonly [field: string]: unknown;
}

/** The daemon as a child process: `node dist/cli.js run --config FILE`. */
export interface Daemon {
  readonly child: ChildProcess;
  /** Raw stderr (all of it). */
  stderr(): string;
  /** Parsed JSON log lines so far. */
  logs(): LogLine[];
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>;
  /** SIGTERM and wait. */
  stop(): Promise<number | string>;
}

export function runCli(
  args: readonly string[],
  env: Record<string, string> = {},
): {
  child: ChildProcess;
  output: Promise<{ code: number | string; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const output = new Promise<{ code: number | string; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code: code ?? signal ?? -1, stdout, stderr })),
  );
  return { child, output };
}

/** Waits for the daemon's `listening` line; fails with its stderr if it exits first. */
export async function waitListening(d: Daemon, timeoutMs = 20_000): Promise<void> {
  let exited: number | string | undefined;
  void d.exited.then((c) => (exited = c));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (d.logs().some((l) => l.msg === "listening")) return;
    if (exited !== undefined || Date.now() > deadline) {
      throw new Error(`daemon did not start (exit ${String(exited)}):\n${d.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function startDaemon(configPath: string, env: Record<string, string> = {}): Daemon {
  const { child, output } = runCli(["run", "--config", configPath], env);
  let raw = "";
  child.stderr?.on("data", (d: Buffer) => (raw += d.toString()));
  const exited = output.then((o) => o.code);
  return {
    child,
    stderr: () => raw,
    logs: () =>
      raw
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as LogLine),
    exited,
    stop() {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** GET/POST the management API with the management token (or the given headers). */
export async function mgmt(
  base: string,
  pathAndQuery: string,
  init: Omit<RequestInit, "headers"> & { headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; json: () => unknown }> {
  const res = await fetch(new URL(pathAndQuery, base), {
    ...init,
    headers: { Authorization: `Bearer ${MANAGEMENT_TOKEN}`, ...init.headers },
  });
  const body = await res.text();
  return { status: res.status, body, json: () => JSON.parse(body) as unknown };
}

export interface InstanceJson {
  instance: string;
  address: string;
  price: number;
  arvados_instance_type: string;
  provider_instance_type: string;
  last_container_uuid: string;
  running_container_uuids: string[] | null;
  worker_state: string;
  idle_behavior: string;
}

export async function instances(base: string): Promise<InstanceJson[]> {
  const r = await mgmt(base, "arvados/v1/dispatch/instances");
  if (r.status !== 200) throw new Error(`instances: HTTP ${r.status}: ${r.body}`);
  return (r.json() as { items: InstanceJson[] | null }).items ?? [];
}

/** A committed container request for `command`; returns its container's UUID. */
export async function submit(
  peer: ApiPeer,
  command: string[],
  extra: Record<string, unknown> = {},
): Promise<string> {
  const cr = await peer.client.containerRequests.create({
    name: "e2e",
    container_image: "d41d8cd98f00b204e9800998ecf8427e+0",
    command,
    output_path: "/mnt/output",
    mounts: { "/mnt/output": { kind: "collection", writable: true } },
    runtime_constraints: { vcpus: 1, ram: 134217728, API: true },
    priority: 500,
    state: "Committed",
    use_existing: false,
    ...extra,
  } as never);
  const uuid = (cr as { container_uuid?: string | null }).container_uuid;
  if (typeof uuid !== "string") throw new Error("container request got no container");
  return uuid;
}

/**
 * One stub cloud for several in-process dispatchers in turn: its fake VMs live in this process,
 * and a dispatcher's stop must not stop the cloud itself (the next one adopts its VMs).
 */
export function sharedStubCloud(): {
  readonly drivers: DriverRegistry;
  /** The cloud's instance set once a dispatcher has made it. */
  set(): InstanceSet | undefined;
  stop(): Promise<void>;
} {
  let cloud: StubCloud | undefined;
  let shared: InstanceSet | undefined;
  const drivers = createDriverRegistry({
    stub: async (ctx) => {
      if (shared === undefined) {
        const real = await createStubDriver({ onCloud: (c) => (cloud = c) })(ctx);
        shared = {
          create: (req, signal) => real.create(req, signal),
          instances: (filter, signal) => real.instances(filter, signal),
          instanceQuotaGroup: (type) => real.instanceQuotaGroup(type),
          stop: () => Promise.resolve(),
        };
      }
      return shared;
    },
  });
  return { drivers, set: () => shared, stop: async () => cloud?.stop() };
}

/** Loads a test config and a JSON-lines logger that appends each line to `lines`. */
export async function loadForTest(
  configPath: string,
  lines: string[],
): Promise<{ config: LoadedConfig; logger: Logger }> {
  const loaded = await loadConfig({ path: configPath });
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.text).join("\n"));
  const logger = createLogger({
    level: "info",
    format: "json",
    stream: new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    }),
  });
  return { config: loaded.config, logger };
}
