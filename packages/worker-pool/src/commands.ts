import { createHmac } from "node:crypto";
import {
  goJson,
  goJsonLine,
  goTime,
  instanceTypeJson,
  type InstanceType,
} from "@dispatch-cloud/arvados-types";
import type { InstancePrice } from "@dispatch-cloud/cloud-driver-api";

/*
 * The exact command lines and stdin documents of the crunch-run protocol. Kept pure so the
 * byte-for-byte formats are tested on their own.
 */

/** Single-quote one shell word, `'` written as `'\''`. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Every runner command is prefixed with `sudo ` unless the remote user is root. */
export function withSudo(command: string, remoteUser: string): string {
  return remoteUser === "root" ? command : `sudo ${command}`;
}

/** `<runnerCmd> --detach --stdin-config '<arg>'… '<uuid>'`. */
export function detachCommand(
  runnerCmd: string,
  runnerArgs: readonly string[],
  uuid: string,
  remoteUser: string,
): string {
  const words = [...runnerArgs, uuid].map(shellQuote).join(" ");
  return withSudo(`${runnerCmd} --detach --stdin-config ${words}`, remoteUser);
}

/** `<runnerCmd> --list`, plus ` --stdin-prices` when prices go on stdin. */
export function listCommand(runnerCmd: string, withPrices: boolean, remoteUser: string): string {
  return withSudo(`${runnerCmd} --list${withPrices ? " --stdin-prices" : ""}`, remoteUser);
}

/** `<runnerCmd> --kill <signal> <uuid>` (not quoted, as Arvados sends it). */
export function killCommand(
  runnerCmd: string,
  signal: number,
  uuid: string,
  remoteUser: string,
): string {
  return withSudo(`${runnerCmd} --kill ${signal} ${uuid}`, remoteUser);
}

/** The directory part of the runner path, with its trailing slash. */
export function runnerDir(runnerCmd: string): string {
  const i = runnerCmd.lastIndexOf("/");
  return i < 0 ? "" : runnerCmd.slice(0, i + 1);
}

/** The check whether the right runner binary is installed: run without sudo. */
export function md5sumCommand(runnerCmd: string): string {
  return `md5sum ${runnerCmd}`;
}

/** The md5sum output that means "already installed". */
export function md5sumExpected(hash: string, runnerCmd: string): string {
  return `${hash}  ${runnerCmd}\n`;
}

/**
 * The install script (binary on stdin). touch+chmod come before the write so a file with the
 * right hash never has the wrong mode.
 */
export function installCommand(runnerCmd: string, remoteUser: string): string {
  const script =
    `set -e; dstdir="${runnerDir(runnerCmd)}"; dstfile="${runnerCmd}"; ` +
    `mkdir -p "$dstdir"; touch "$dstfile"; chmod 0755 "$dstdir" "$dstfile"; cat >"$dstfile"`;
  return remoteUser === "root" ? script : `sudo sh -c ${shellQuote(script)}`;
}

/** What one `--list` run reported. */
export interface ListReport {
  /** Containers whose crunch-run is alive. */
  readonly running: string[];
  /** The VM says it cannot run containers (`broken` line). */
  readonly broken: boolean;
  /** Containers whose crunch-run exited while something still holds the lock. */
  readonly stale: string[];
}

/**
 * Parse `--list` output. `broken` counts before the cluster filter; lines of other clusters,
 * and two-token lines other than `<uuid> stale`, are ignored.
 */
export function parseListOutput(stdout: string, clusterId: string): ListReport {
  const running: string[] = [];
  const stale: string[] = [];
  let broken = false;
  for (const line of stdout.split("\n")) {
    if (line === "") continue;
    if (line === "broken") {
      broken = true;
      continue;
    }
    if (!line.startsWith(clusterId)) continue;
    const toks = line.split(" ");
    if (toks.length === 1) running.push(line);
    else if (toks[1] === "stale") stale.push(toks[0]!);
  }
  return { running, broken, stale };
}

/** The price list `--list --stdin-prices` reads. */
export function pricesJson(prices: readonly InstancePrice[]): string {
  return goJson(prices.map((p) => ({ StartTime: goTime(p.StartTime), Price: p.Price })));
}

/**
 * The instance type as crunch-run saves it in `node.json`: Go's JSON with a 4-space indent and
 * a trailing newline.
 */
export function instanceTypeDocument(t: InstanceType): string {
  return `${goJson(instanceTypeJson(t), "    ")}\n`;
}

/** `<host>:0` from an address that may carry a port (IPv6 hosts bracketed). */
export function gatewayAddress(address: string): string {
  let host = address;
  const bracketed = /^\[(.*)\]:\d*$/.exec(address);
  const plain = /^([^:]*):\d*$/.exec(address);
  if (bracketed) host = bracketed[1]!;
  else if (plain) host = plain[1]!;
  return host.includes(":") ? `[${host}]:0` : `${host}:0`;
}

/** The secret crunch-run's container gateway accepts: HMAC-SHA256(SystemRootToken, uuid). */
export function gatewayAuthSecret(systemRootToken: string, uuid: string): string {
  return createHmac("sha256", systemRootToken).update(uuid).digest("hex");
}

export interface DetachConfigInput {
  readonly uuid: string;
  readonly instanceType: InstanceType;
  readonly address: string;
  readonly apiHost: string;
  readonly apiInsecure: boolean;
  readonly systemRootToken: string;
  readonly localKeepBlobBuffersPerVcpu: number;
  readonly driver: string;
  readonly clusterConfigJson: unknown;
}

/**
 * The `--stdin-config` document: `{Env, KeepBuffers, EC2SpotCheck, Cluster}` in Go's field
 * order, Env keys sorted as Go sorts map keys, with the trailing newline of json.Encoder.
 * Secrets travel here, never in argv.
 */
export function detachStdin(c: DetachConfigInput): string {
  const env: Record<string, string> = {
    ARVADOS_API_HOST: c.apiHost,
    ARVADOS_API_TOKEN: c.systemRootToken,
    GatewayAddress: gatewayAddress(c.address),
    GatewayAuthSecret: gatewayAuthSecret(c.systemRootToken, c.uuid),
    InstanceType: instanceTypeDocument(c.instanceType),
  };
  if (c.apiInsecure) env["ARVADOS_API_HOST_INSECURE"] = "1";
  const sortedEnv: Record<string, string> = {};
  for (const k of Object.keys(env).sort()) sortedEnv[k] = env[k]!;
  const buffers = c.localKeepBlobBuffersPerVcpu > 0;
  const doc = {
    Env: sortedEnv,
    KeepBuffers: buffers ? c.localKeepBlobBuffersPerVcpu * c.instanceType.VCPUs : 0,
    EC2SpotCheck: c.driver === "ec2" && c.instanceType.Preemptible,
    Cluster: buffers ? (c.clusterConfigJson ?? null) : null,
  };
  return goJsonLine(doc);
}
