import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** What the runner needs of the container record to start it. */
export interface ContainerSpec {
  readonly uuid: string;
  readonly command: readonly string[];
  readonly cwd: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly container_image: string;
  readonly runtime_constraints: { readonly ram: number; readonly API?: boolean | null };
}

/** How to start it, from crunch-run's flags. */
export interface EngineOptions {
  /**
   * The container lock's descriptor, or null. The container's process inherits it, so that if
   * this runner dies while the container lives on, the lock stays held and `--list` reports a
   * stale run lock (the dispatcher then retires the node), as Arvados's crunch-run's arv-mount
   * does; otherwise the node would look idle with a container still running on it.
   */
  readonly lockFd: number | null;
  readonly enableMemoryLimit: boolean;
  readonly enableNetworking: string;
  readonly networkMode: string;
}

export interface StartedContainer {
  readonly process: ChildProcess;
  /** Removes what the engine created for this container. */
  cleanup(): void;
}

export type EngineName = "docker" | "process";

export class EngineError extends Error {
  override readonly name = "EngineError";
  /** True when the failure says this host cannot run containers at all. */
  constructor(
    message: string,
    readonly brokenNode: boolean,
  ) {
    super(message);
  }
}

export function isEngine(name: string): name is EngineName {
  return name === "docker" || name === "process";
}

/**
 * `process`: the command runs directly on this host in a fresh scratch directory, with the
 * container's environment, its working directory created inside the scratch directory, in a
 * process group of its own so a kill reaches everything it started.
 */
function startProcess(spec: ContainerSpec, options: EngineOptions): StartedContainer {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `crunch-run-${spec.uuid}-`));
  const cwd = path.join(scratch, spec.cwd === "" ? "." : spec.cwd);
  fs.mkdirSync(cwd, { recursive: true });
  const [program, ...args] = spec.command;
  if (program === undefined) throw new EngineError("container has an empty command", false);
  const child = spawn(program, args, {
    cwd,
    env: {
      PATH: process.env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: scratch,
      TMPDIR: scratch,
      ...spec.environment,
    },
    detached: true,
    stdio: ["ignore", "pipe", "pipe", ...(options.lockFd === null ? [] : [options.lockFd])],
  });
  return { process: child, cleanup: () => fs.rmSync(scratch, { recursive: true, force: true }) };
}

/**
 * Throws an EngineError if this host cannot run containers with `engine`; a broken-node error
 * for a Docker engine that does not answer, as crunch-run reports it.
 */
export function checkEngine(engine: EngineName): void {
  if (engine !== "docker") return;
  const info = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], {
    encoding: "utf8",
  });
  if (info.error !== undefined || info.status !== 0) {
    throw new EngineError(
      `Cannot connect to the Docker daemon: ${(info.stderr || info.error?.message || "").trim()}`,
      true,
    );
  }
}

const MIN_DOCKER_RAM = 4 * 1024 * 1024;

/**
 * `docker run`'s arguments: the container's image, environment and working directory, with
 * crunch-run's rules for networking (none unless the container asks for API access or
 * `--container-enable-networking=always`; then `--container-network-mode` unless `default`)
 * and memory (limited to the container's RAM request unless `--enable-memory-limit=false`).
 */
export function dockerRunArgs(spec: ContainerSpec, options: EngineOptions): string[] {
  const args = ["run", "--rm", "--name", spec.uuid, "--workdir", spec.cwd || "/"];
  const network = options.enableNetworking === "always" || spec.runtime_constraints.API === true;
  if (!network) args.push("--network=none");
  else if (options.networkMode !== "default") args.push(`--network=${options.networkMode}`);
  if (options.enableMemoryLimit && spec.runtime_constraints.ram > 0) {
    // As crunch-run: RAM and RAM+swap both at the request, never below docker's minimum.
    const ram = Math.max(spec.runtime_constraints.ram, MIN_DOCKER_RAM);
    args.push(`--memory=${ram}`, `--memory-swap=${ram}`);
  }
  for (const [k, v] of Object.entries(spec.environment)) args.push("--env", `${k}=${v}`);
  args.push(spec.container_image, ...spec.command);
  return args;
}

function startDocker(spec: ContainerSpec, options: EngineOptions): StartedContainer {
  const child = spawn("docker", dockerRunArgs(spec, options), {
    detached: true,
    stdio: ["ignore", "pipe", "pipe", ...(options.lockFd === null ? [] : [options.lockFd])],
  });
  return { process: child, cleanup: () => undefined };
}

export function startContainer(
  engine: EngineName,
  spec: ContainerSpec,
  options: EngineOptions,
): StartedContainer {
  return engine === "docker" ? startDocker(spec, options) : startProcess(spec, options);
}
