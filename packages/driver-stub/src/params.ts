import { readDriverParameters } from "@dispatch-cloud/cloud-driver-api";

/** What a failing cloud call throws. `plain` is an error of no particular kind. */
export type StubFailureKind =
  "rate-limit" | "quota" | "capacity" | "capacity-instance-type" | "capacity-quota-group" | "plain";

export const STUB_FAILURE_KINDS: readonly StubFailureKind[] = [
  "rate-limit",
  "quota",
  "capacity",
  "capacity-instance-type",
  "capacity-quota-group",
  "plain",
];

/** Every Nth call of one operation fails with `kind` (0 = never). */
export interface StubFailEvery {
  readonly every: number;
  readonly kind: StubFailureKind;
}

/** How a fake VM answers `verifyHostKey`. */
export type StubHostKeyCheck = "not-implemented" | "compare";

/**
 * The stub cloud's knobs, all deterministic. As DriverParameters they are written in
 * config.yml with these names (keys matched case-insensitively); durations are Go-style
 * strings ("500ms", "1m") and are held here in milliseconds.
 */
export interface StubParameters {
  /** `BootDelay`: time from create until the VM accepts SSH. */
  readonly bootDelayMs: number;
  /** `SlowBootEvery` / `SlowBootDelay`: every Nth VM boots in SlowBootDelay instead. */
  readonly slowBootEvery: number;
  readonly slowBootDelayMs: number;
  /** `ContainerRunTime`: how long a simulated crunch-run runs its container. */
  readonly containerRunTimeMs: number;
  /** `ContainerExitCode`: the exit code it reports. */
  readonly containerExitCode: number;
  /** `MaxInstances`: creates beyond this many live VMs fail with a quota error (0 = no limit). */
  readonly maxInstances: number;
  /** `FailCreateEvery`/`FailCreateKind`, and the same for Destroy, List and SetTags. */
  readonly failCreate: StubFailEvery;
  readonly failDestroy: StubFailEvery;
  readonly failList: StubFailEvery;
  readonly failSetTags: StubFailEvery;
  /** `RateLimitRetryAfter`: how far ahead a rate-limit error's earliest retry is. */
  readonly rateLimitRetryAfterMs: number;
  /** `BrokenEvery`/`BrokenAfter`: every Nth VM reports `broken` to `--list` once booted for BrokenAfter. */
  readonly brokenEvery: number;
  readonly brokenAfterMs: number;
  /** `SilentEvery`/`SilentAfter`: every Nth VM stops answering SSH once booted for SilentAfter. */
  readonly silentEvery: number;
  readonly silentAfterMs: number;
  /** `HostKeyCheck`: `not-implemented` (like EC2 and Azure: the instance secret decides) or `compare`. */
  readonly hostKeyCheck: StubHostKeyCheck;
  /** `SharedHostKey`: one host key for every VM (cheap for benchmarks with many VMs). */
  readonly sharedHostKey: boolean;
  /** `RemoteUser`: the SSH user (default root, so commands carry no sudo). */
  readonly remoteUser: string;
  /** `APIScheme`: how simulated crunch-run reaches ARVADOS_API_HOST (`https` like Arvados, or `http`). */
  readonly apiScheme: "https" | "http";
}

export const DEFAULT_STUB_PARAMETERS: StubParameters = {
  bootDelayMs: 0,
  slowBootEvery: 0,
  slowBootDelayMs: 0,
  containerRunTimeMs: 1000,
  containerExitCode: 0,
  maxInstances: 0,
  failCreate: { every: 0, kind: "plain" },
  failDestroy: { every: 0, kind: "plain" },
  failList: { every: 0, kind: "plain" },
  failSetTags: { every: 0, kind: "plain" },
  rateLimitRetryAfterMs: 1000,
  brokenEvery: 0,
  brokenAfterMs: 0,
  silentEvery: 0,
  silentAfterMs: 0,
  hostKeyCheck: "not-implemented",
  sharedHostKey: false,
  remoteUser: "root",
  apiScheme: "https",
};

/** Every DriverParameters key the stub driver reads (config checks warn about any other). */
export const STUB_PARAMETER_KEYS = [
  "BootDelay",
  "SlowBootEvery",
  "SlowBootDelay",
  "ContainerRunTime",
  "ContainerExitCode",
  "MaxInstances",
  ...["Create", "Destroy", "List", "SetTags"].flatMap((op) => [`Fail${op}Every`, `Fail${op}Kind`]),
  "RateLimitRetryAfter",
  "BrokenEvery",
  "BrokenAfter",
  "SilentEvery",
  "SilentAfter",
  "HostKeyCheck",
  "SharedHostKey",
  "RemoteUser",
  "APIScheme",
] as const;

/**
 * Parse DriverParameters for `Driver: stub`. Throws a DriverParametersError naming every bad
 * key. Unknown keys are ignored (the object also carries other drivers' defaults).
 */
export function parseStubParameters(
  parameters: Readonly<Record<string, unknown>> | null | undefined,
): StubParameters {
  const r = readDriverParameters(parameters, undefined, STUB_PARAMETER_KEYS);
  const d = DEFAULT_STUB_PARAMETERS;
  const nat = { min: 0 };
  const failEvery = (op: string, def: StubFailEvery): StubFailEvery => ({
    every: r.integer(`Fail${op}Every`, { default: def.every, ...nat }),
    kind: r.oneOf(`Fail${op}Kind`, STUB_FAILURE_KINDS, { default: def.kind }),
  });
  const p: StubParameters = {
    bootDelayMs: r.duration("BootDelay", { default: d.bootDelayMs, ...nat }),
    slowBootEvery: r.integer("SlowBootEvery", { default: d.slowBootEvery, ...nat }),
    slowBootDelayMs: r.duration("SlowBootDelay", { default: d.slowBootDelayMs, ...nat }),
    containerRunTimeMs: r.duration("ContainerRunTime", { default: d.containerRunTimeMs, ...nat }),
    containerExitCode: r.integer("ContainerExitCode", {
      default: d.containerExitCode,
      min: 0,
      max: 255,
    }),
    maxInstances: r.integer("MaxInstances", { default: d.maxInstances, ...nat }),
    failCreate: failEvery("Create", d.failCreate),
    failDestroy: failEvery("Destroy", d.failDestroy),
    failList: failEvery("List", d.failList),
    failSetTags: failEvery("SetTags", d.failSetTags),
    rateLimitRetryAfterMs: r.duration("RateLimitRetryAfter", {
      default: d.rateLimitRetryAfterMs,
      ...nat,
    }),
    brokenEvery: r.integer("BrokenEvery", { default: d.brokenEvery, ...nat }),
    brokenAfterMs: r.duration("BrokenAfter", { default: d.brokenAfterMs, ...nat }),
    silentEvery: r.integer("SilentEvery", { default: d.silentEvery, ...nat }),
    silentAfterMs: r.duration("SilentAfter", { default: d.silentAfterMs, ...nat }),
    hostKeyCheck: r.oneOf("HostKeyCheck", ["not-implemented", "compare"] as const, {
      default: d.hostKeyCheck,
    }),
    sharedHostKey: r.boolean("SharedHostKey", { default: d.sharedHostKey }),
    remoteUser: r.string("RemoteUser", { default: d.remoteUser, nonEmpty: true }),
    apiScheme: r.oneOf("APIScheme", ["https", "http"] as const, { default: d.apiScheme }),
  };
  r.finish();
  return p;
}
