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
function startProcess(spec: ContainerSpec): StartedContainer {
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
    stdio: ["ignore", "pipe", "pipe"],
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

/** `docker`: `docker run` with the container's image, environment and working directory. */
function startDocker(spec: ContainerSpec): StartedContainer {
  const args = ["run", "--rm", "--name", spec.uuid, "--workdir", spec.cwd || "/"];
  for (const [k, v] of Object.entries(spec.environment)) args.push("--env", `${k}=${v}`);
  args.push(spec.container_image, ...spec.command);
  const child = spawn("docker", args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  return { process: child, cleanup: () => undefined };
}

export function startContainer(engine: EngineName, spec: ContainerSpec): StartedContainer {
  return engine === "docker" ? startDocker(spec) : startProcess(spec);
}
