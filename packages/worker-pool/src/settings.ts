import type { InstanceType } from "@dispatch-cloud/arvados-types";
import { DEFAULT_TAG_KEY_PREFIX } from "@dispatch-cloud/cloud-driver-api";
import type { WorkerPoolConfig } from "./types.js";

/** Arvados's built-in defaults, used when a configured duration is ≤ 0 (spec §10). */
export const DEFAULTS = {
  probeIntervalMs: 10_000,
  syncIntervalMs: 60_000,
  timeoutIdleMs: 60_000,
  timeoutBootingMs: 600_000,
  timeoutProbeMs: 600_000,
  timeoutShutdownMs: 10_000,
  timeoutTermMs: 120_000,
  timeoutSignalMs: 5_000,
  timeoutStaleRunLockMs: 5_000,
  maxProbesPerSecond: 10,
  deployRunnerDirectory: "/tmp/arvados-crunch-run",
  crunchRunCommand: "crunch-run",
  runtimeEngine: "docker",
} as const;

/** Fixed by Arvados, not configurable. */
export const QUOTA_ERROR_TTL_MS = 60_000;
export const CAPACITY_ERROR_TTL_MS = 60_000;
export const MAX_CREATE_OPS_THROTTLE_MS = 5_000;
export const SIGTERM = 15;

/** The config with every default filled in. */
export interface Settings {
  readonly config: WorkerPoolConfig;
  readonly tagKeyPrefix: string;
  readonly bootProbeCommand: string;
  readonly instanceInitCommand: string;
  readonly deployRunnerDirectory: string;
  readonly crunchRunCommand: string;
  /** `--runtime-engine=<engine>` then CrunchRunArgumentsList. */
  readonly runnerArgs: readonly string[];
  readonly maxProbesPerSecond: number;
  readonly maxConcurrentInstanceCreateOps: number;
  readonly maxInstances: number;
  readonly probeIntervalMs: number;
  readonly syncIntervalMs: number;
  readonly timeoutIdleMs: number;
  readonly timeoutBootingMs: number;
  readonly timeoutProbeMs: number;
  readonly timeoutShutdownMs: number;
  readonly timeoutTermMs: number;
  readonly timeoutSignalMs: number;
  readonly timeoutStaleRunLockMs: number;
}

const pos = (v: number | undefined, d: number): number => (v !== undefined && v > 0 ? v : d);

export function resolveSettings(c: WorkerPoolConfig): Settings {
  const engine = c.runtimeEngine || DEFAULTS.runtimeEngine;
  return {
    config: c,
    tagKeyPrefix: c.tagKeyPrefix ?? DEFAULT_TAG_KEY_PREFIX,
    bootProbeCommand: c.bootProbeCommand === "" ? "true" : c.bootProbeCommand,
    instanceInitCommand: c.instanceInitCommand ?? "",
    deployRunnerDirectory: c.deployRunnerDirectory || DEFAULTS.deployRunnerDirectory,
    crunchRunCommand: c.crunchRunCommand || DEFAULTS.crunchRunCommand,
    runnerArgs: [`--runtime-engine=${engine}`, ...(c.crunchRunArgumentsList ?? [])],
    maxProbesPerSecond:
      c.maxProbesPerSecond !== undefined && c.maxProbesPerSecond >= 1
        ? c.maxProbesPerSecond
        : DEFAULTS.maxProbesPerSecond,
    maxConcurrentInstanceCreateOps: Math.max(0, c.maxConcurrentInstanceCreateOps ?? 1),
    maxInstances: Math.max(0, c.maxInstances ?? 64),
    probeIntervalMs: pos(c.probeIntervalMs, DEFAULTS.probeIntervalMs),
    syncIntervalMs: pos(c.syncIntervalMs, DEFAULTS.syncIntervalMs),
    timeoutIdleMs: pos(c.timeoutIdleMs, DEFAULTS.timeoutIdleMs),
    timeoutBootingMs: pos(c.timeoutBootingMs, DEFAULTS.timeoutBootingMs),
    timeoutProbeMs: pos(c.timeoutProbeMs, DEFAULTS.timeoutProbeMs),
    timeoutShutdownMs: pos(c.timeoutShutdownMs, DEFAULTS.timeoutShutdownMs),
    timeoutTermMs: pos(c.timeoutTermMs, DEFAULTS.timeoutTermMs),
    timeoutSignalMs: pos(c.timeoutSignalMs, DEFAULTS.timeoutSignalMs),
    timeoutStaleRunLockMs: pos(c.timeoutStaleRunLockMs, DEFAULTS.timeoutStaleRunLockMs),
  };
}

/** The type of a VM whose InstanceType tag names no configured type: only the name is known. */
export function placeholderType(name: string): InstanceType {
  return {
    Name: name,
    ProviderType: "",
    VCPUs: 0,
    RAM: 0,
    IncludedScratch: 0,
    AddedScratch: 0,
    Scratch: 0,
    Price: 0,
    Preemptible: false,
    GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
  };
}
