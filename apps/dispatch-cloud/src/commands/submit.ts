import { ArvadosApiError } from "@dispatch-cloud/arvados-client";
import { parseByteSize } from "@dispatch-cloud/config";
import type { Command } from "commander";
import {
  clientCommand,
  CONFIG_HELP,
  INTERRUPTED,
  positiveInt,
  withTarget,
} from "../client/command.js";
import { watchRequest } from "../client/observe.js";
import {
  containerRequest,
  DEFAULT_IMAGE,
  type GpuSpec,
  type SubmitSpec,
} from "../client/request.js";
import { ClientError, explainApiError, type Target } from "../client/target.js";
import { systemWatchClock, verdict, watchContainer } from "../client/watch.js";
import type { CommandContext } from "../io.js";

/** How often `--wait` looks again: a person is watching, and the controller barely notices. */
export const WAIT_POLL_MS = 1000;

/** RAM and scratch unless given: enough for a small command, small enough for any machine. */
const DEFAULT_SIZE = 256 << 20;

/** A byte size in the config file's syntax, or one line naming the flag. */
function byteSize(flag: string, zero: "zero allowed" | "positive") {
  return (value: string): number => {
    const r = parseByteSize(value);
    if (!r.ok) {
      throw new ClientError(
        `${flag} ${JSON.stringify(value)}: ${r.error} (examples: 64GiB, 550MiB, 1000000)`,
      );
    }
    if (r.value < 0 || (r.value === 0 && zero === "positive")) {
      throw new ClientError(
        `${flag} ${JSON.stringify(value)}: must be ${zero === "positive" ? "more than 0 bytes" : "0 or more"}`,
      );
    }
    return r.value;
  };
}

interface SubmitOptions {
  config?: string;
  priority: number;
  vcpus: number;
  ram?: number;
  scratch?: number;
  image: string;
  preemptible?: boolean;
  gpu?: number;
  gpuStack?: string;
  gpuDriver?: string;
  gpuTarget?: string[];
  gpuVram?: number;
  wait?: boolean;
}

/** The GPU part of the request; the dispatcher needs stack, driver and target to match a type. */
function gpuSpec(o: SubmitOptions): GpuSpec | null {
  if (o.gpu === undefined) {
    const stray = [
      ["--gpu-stack", o.gpuStack],
      ["--gpu-driver", o.gpuDriver],
      ["--gpu-vram", o.gpuVram],
      ["--gpu-target", o.gpuTarget],
    ].find(([, v]) => v !== undefined);
    if (stray !== undefined) throw new ClientError(`${String(stray[0])} needs --gpu N`);
    return null;
  }
  const stack = o.gpuStack ?? "cuda";
  if (stack !== "cuda" && stack !== "rocm") {
    throw new ClientError(`--gpu-stack ${JSON.stringify(stack)}: expected cuda or rocm`);
  }
  const targets = o.gpuTarget ?? [];
  if (stack === "cuda" && (o.gpuDriver === undefined || targets.length === 0)) {
    throw new ClientError(
      "--gpu with CUDA needs --gpu-driver (minimum driver version, e.g. 11.4) and --gpu-target (compute capability, e.g. 8.0), which the dispatcher matches against InstanceTypes.*.GPU",
    );
  }
  if (stack === "rocm" && targets.length === 0) {
    throw new ClientError("--gpu with ROCm needs --gpu-target (e.g. gfx1100)");
  }
  return {
    count: o.gpu,
    stack,
    driverVersion: o.gpuDriver ?? "",
    hardwareTarget: targets,
    vram: o.gpuVram ?? 0,
  };
}

/**
 * `--wait`: progress on stderr until the request's container is final. Returns the exit status:
 * the container's exit code when it completes, 1 when it ends Cancelled, 130 when interrupted.
 */
async function waitForContainer(
  ctx: CommandContext,
  target: Target,
  requestUuid: string,
  containerUuid: string,
): Promise<number> {
  const err = ctx.io.stderr;
  if (target.dispatchers.length === 0) {
    err(
      "(no dispatcher management API configured: scheduling status is not shown, only the container record)\n",
    );
  }
  const watch = watchRequest(target, requestUuid, containerUuid, (r) =>
    err(
      `container ${r.from} ended ${r.ended.state}${r.ended.runtimeError ? `: ${r.ended.runtimeError}` : ""}; the request tries again (attempt ${r.attempt} of ${r.max}) as container ${r.to}\n`,
    ),
  );
  const outcome = await watchContainer({
    observe: async (signal) => {
      try {
        return await watch.observe(signal);
      } catch (e) {
        // Shown once, and the wait goes on: a controller restart must not end a long wait.
        if (e instanceof ArvadosApiError && e.kind !== "aborted") {
          throw new Error(explainApiError(e, target.tokenSource), { cause: e });
        }
        throw e;
      }
    },
    onProgress: (line) => err(`${line}\n`),
    timeoutMs: Infinity,
    pollMs: WAIT_POLL_MS,
    clock: systemWatchClock,
    ...(ctx.io.stopSignal === undefined ? {} : { signal: ctx.io.stopSignal }),
  });
  const uuid = watch.current();
  if (outcome.kind !== "final") {
    const state = outcome.last?.state ?? "not yet seen";
    err(
      `dispatch-cloud: stopped waiting; container ${uuid} is ${state} (dispatch-cloud container cancel ${uuid} cancels it)\n`,
    );
    return INTERRUPTED;
  }
  const v = verdict(outcome, uuid, 0);
  const code = outcome.observation.exitCode;
  if (outcome.observation.state === "Complete" && code !== null && code >= 0 && code <= 255) {
    err(`container ${uuid} Complete, exit code ${code}\n`);
    return code;
  }
  err(`dispatch-cloud: ${v.ok ? `container ${uuid} exited ${code}` : v.reason}\n`);
  return 1;
}

/** `submit [flags] -- CMD...`: one container request for CMD; prints its container's UUID. */
export function registerSubmitCommand(program: Command, ctx: CommandContext): void {
  clientCommand(program.command("submit"))
    .description(
      "submit a container request to run CMD; print its container's UUID (with --wait, follow it and exit with its exit code)",
    )
    .argument("<CMD...>", "the command and its arguments (put -- before it)")
    .option("--config <file>", CONFIG_HELP)
    .option("--priority <n>", "1 (lowest) to 1000", positiveInt("--priority", 1000), 500)
    .option("--vcpus <n>", "CPU cores", positiveInt("--vcpus"), 1)
    .option("--ram <size>", "memory (default: 256MiB)", byteSize("--ram", "positive"))
    .option(
      "--scratch <size>",
      "scratch space (default: 256MiB)",
      byteSize("--scratch", "positive"),
    )
    .option("--image <image>", "container image (name or portable data hash)", DEFAULT_IMAGE)
    .option("--preemptible", "run on a preemptible (spot) instance")
    .option("--gpu <n>", "GPU devices", positiveInt("--gpu"))
    .option("--gpu-stack <stack>", "cuda (default) or rocm")
    .option("--gpu-driver <version>", "minimum GPU driver version, e.g. 11.4")
    .option(
      "--gpu-target <target>",
      "acceptable hardware target (CUDA compute capability or ROCm gfx name); repeatable",
      (v: string, prev: string[] | undefined) => [
        ...(prev ?? []),
        ...v.split(",").filter((t) => t !== ""),
      ],
    )
    .option("--gpu-vram <size>", "VRAM per device", byteSize("--gpu-vram", "zero allowed"))
    .option("--wait", "follow the container to the end on stderr; exit with its exit code")
    .addHelpText(
      "after",
      `Sizes take the config file's syntax: 64GiB, 550MiB, 128GB, or a number of bytes. The command
runs in a scratch directory (/out, the output) of --scratch bytes; the request never reuses an
earlier container. With --wait the UUID is still printed first, and a container the request
retries after a failure is followed under its new UUID.
`,
    )
    .action(async (command: string[], opts: SubmitOptions) => {
      const spec: SubmitSpec = {
        command,
        priority: opts.priority,
        image: opts.image,
        vcpus: opts.vcpus,
        ram: opts.ram ?? DEFAULT_SIZE,
        scratch: opts.scratch ?? DEFAULT_SIZE,
        preemptible: opts.preemptible === true,
        gpu: gpuSpec(opts),
      };
      await withTarget(ctx, opts.config, async (target) => {
        const cr = await target.api.containerRequests.create(containerRequest(spec));
        if (cr.container_uuid === null) {
          throw new ClientError(`container request ${cr.uuid} was committed but has no container`);
        }
        ctx.io.stdout(`${cr.container_uuid}\n`);
        ctx.setExitCode(
          opts.wait === true ? await waitForContainer(ctx, target, cr.uuid, cr.container_uuid) : 0,
        );
      });
    });
}
