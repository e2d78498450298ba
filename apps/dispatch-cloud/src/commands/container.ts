import { ArvadosApiError, type ContainerRequest } from "@dispatch-cloud/arvados-client";
import {
  CONTAINER_STATES,
  type Container,
  type ContainerState,
} from "@dispatch-cloud/arvados-types";
import type { Command } from "commander";
import {
  clientCommand,
  CONFIG_HELP,
  INTERRUPTED,
  positiveInt,
  withTarget,
} from "../client/command.js";
import {
  fields,
  formatBytes,
  formatTime,
  shellCommand,
  table,
  truncate,
} from "../client/format.js";
import { logLines, logRecords } from "../client/logs.js";
import { dispatcherStatus, priorityZeroStatus } from "../client/observe.js";
import { ClientError, type Target } from "../client/target.js";
import { systemWatchClock } from "../client/watch.js";
import type { CommandContext } from "../io.js";
import { WAIT_POLL_MS } from "./submit.js";

const UUID_RE = /^[a-z0-9]{5}-([a-z0-9]{5})-[a-z0-9]{15}$/;

const isFinal = (state: ContainerState): boolean => state === "Complete" || state === "Cancelled";

/** `p`, with a 404 turned into "<what> not found". */
async function found<T>(target: Target, what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ArvadosApiError && err.isNotFound) {
      throw new ClientError(`${what} not found at ${new URL(target.api.baseUrl).origin}`);
    }
    throw err;
  }
}

type Named = { kind: "container"; uuid: string } | { kind: "request"; uuid: string };

/** A container UUID, or a container request UUID standing for the request's container. */
function named(arg: string): Named {
  const infix = UUID_RE.exec(arg)?.[1];
  if (infix === "dz642") return { kind: "container", uuid: arg };
  if (infix === "xvhdp") return { kind: "request", uuid: arg };
  throw new ClientError(
    `${JSON.stringify(arg)} is not a container UUID (zzzzz-dz642-...) or a container request UUID (zzzzz-xvhdp-...)`,
  );
}

async function containerUuidOf(target: Target, arg: string): Promise<string> {
  const n = named(arg);
  if (n.kind === "container") return n.uuid;
  const cr = await found(
    target,
    `container request ${n.uuid}`,
    target.api.containerRequests.get(n.uuid),
  );
  if (cr.container_uuid === null) {
    throw new ClientError(`container request ${n.uuid} has no container (it is ${cr.state})`);
  }
  return cr.container_uuid;
}

function parseState(value: string): ContainerState {
  const state = CONTAINER_STATES.find((s) => s.toLowerCase() === value.toLowerCase());
  if (state === undefined) {
    throw new ClientError(
      `--state ${JSON.stringify(value)}: expected one of ${CONTAINER_STATES.join(", ")}`,
    );
  }
  return state;
}

const printJson = (ctx: CommandContext, value: unknown): void =>
  ctx.io.stdout(`${JSON.stringify(value, null, 2)}\n`);

/** "Complete, exit code 0", "Queued, on hold (priority 0)", "Cancelled: <why>". */
function stateText(
  c: Pick<Container, "state" | "exit_code" | "priority" | "runtime_status">,
): string {
  if (c.state === "Complete") return `Complete, exit code ${c.exit_code ?? "none"}`;
  if (c.state === "Cancelled") {
    const why = c.runtime_status.error;
    return `Cancelled${typeof why === "string" && why !== "" ? `: ${why}` : ""}`;
  }
  if (c.state === "Queued" && c.priority === 0) return "Queued, on hold (priority 0)";
  return c.state;
}

/** Sum of the tmp mounts' capacities: the scratch space the dispatcher provides. */
function scratchOf(c: Container): number {
  return Object.values(c.mounts ?? {})
    .filter((m) => m.kind === "tmp")
    .reduce((sum, m) => sum + (m.capacity ?? 0), 0);
}

function resourcesText(c: Container): string {
  const rc = c.runtime_constraints;
  const parts = [
    `${rc.vcpus} VCPU${rc.vcpus === 1 ? "" : "s"}`,
    `${formatBytes(rc.ram)} RAM`,
    `${formatBytes(scratchOf(c))} scratch`,
  ];
  const gpu = rc.gpu;
  if (gpu.device_count > 0) {
    const target =
      gpu.hardware_target.length > 0 ? `, target ${gpu.hardware_target.join("/")}` : "";
    const driver = gpu.driver_version !== "" ? `, driver ${gpu.driver_version}+` : "";
    const vram = gpu.vram > 0 ? `, ${formatBytes(gpu.vram)} VRAM` : "";
    parts.push(`${gpu.device_count} GPU (${gpu.stack}${driver}${target}${vram})`);
  }
  return parts.join(", ");
}

function schedulingText(c: Container): string {
  const sp = c.scheduling_parameters;
  const parts = [sp.preemptible ? "preemptible instance" : "on-demand instance"];
  if (sp.partitions.length > 0) parts.push(`partitions ${sp.partitions.join(",")}`);
  if (sp.max_run_time > 0) parts.push(`max run time ${sp.max_run_time}s`);
  if (sp.supervisor) parts.push("workflow supervisor");
  return parts.join(", ");
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, " ");

async function showContainer(ctx: CommandContext, target: Target, uuid: string): Promise<void> {
  const c = await found(target, `container ${uuid}`, target.api.containers.get(uuid));
  const requests = await target.api.containerRequests.list({
    filters: [["container_uuid", "=", uuid]],
    select: ["uuid", "state", "priority"],
    order: ["created_at"],
  });
  const rs = c.runtime_status;
  let status = "";
  if (c.state === "Queued" && c.priority === 0) status = priorityZeroStatus(c.state);
  else if (c.state === "Queued" || c.state === "Locked")
    status = await dispatcherStatus(target, uuid);
  const pairs: Array<[string, string]> = [
    ["uuid", c.uuid],
    ["state", stateText(c)],
    ["command", shellCommand(c.command)],
    ["image", c.container_image],
    [
      "requests",
      requests.items.map((r) => `${r.uuid} (${r.state}, priority ${r.priority})`).join(", ") || "-",
    ],
    ["resources", resourcesText(c)],
    ["scheduling", schedulingText(c)],
  ];
  if (status !== "") pairs.push(["dispatcher", status]);
  else if ((c.state === "Queued" || c.state === "Locked") && target.dispatchers.length === 0)
    pairs.push(["dispatcher", "(not configured: no scheduling status)"]);
  pairs.push(
    ["created", formatTime(c.created_at)],
    ["started", formatTime(c.started_at)],
    ["finished", formatTime(c.finished_at)],
    ["lock count", String(c.lock_count)],
  );
  for (const key of ["warning", "activity"] as const) {
    const v = rs[key];
    if (typeof v === "string" && v !== "") pairs.push([`runtime ${key}`, oneLine(v)]);
  }
  if (c.log) pairs.push(["log", c.log]);
  if (c.output) pairs.push(["output", c.output]);
  ctx.io.stdout(fields(pairs));
}

/** Prints the container's log records after `afterId`; returns the last id printed. */
async function printLogs(
  ctx: CommandContext,
  target: Target,
  uuid: string,
  afterId: number,
  json: boolean,
): Promise<number> {
  let last = afterId;
  for await (const record of logRecords(target.api, uuid, afterId, ctx.io.stopSignal)) {
    last = record.id;
    if (json) ctx.io.stdout(`${JSON.stringify(record)}\n`);
    else for (const line of logLines(record)) ctx.io.stdout(`${line}\n`);
  }
  return last;
}

async function followLogs(
  ctx: CommandContext,
  target: Target,
  uuid: string,
  opts: { follow?: boolean; json?: boolean },
): Promise<void> {
  const signal = ctx.io.stopSignal;
  let last = 0;
  let state: ContainerState;
  let log: string | null;
  for (;;) {
    // The state is read first: once it is final, one more pass gets every line written before.
    ({ state, log } = await found(
      target,
      `container ${uuid}`,
      target.api.containers.get(
        uuid,
        { select: ["state", "log"] },
        signal ? { signal } : undefined,
      ),
    ));
    last = await printLogs(ctx, target, uuid, last, opts.json === true);
    if (opts.follow !== true || isFinal(state)) break;
    await systemWatchClock.sleep(WAIT_POLL_MS, signal);
  }
  if (last === 0 && state !== "Queued") {
    // Arvados 2.7 stopped writing log records by default; say why nothing came.
    ctx.io.stderr(
      `(no log records for container ${uuid}: Arvados 2.7 and later write them only when Containers.Logging.LimitLogBytesPerJob > 0; its log collection is ${log ?? "not saved yet"})\n`,
    );
  }
}

/** Sets the priority of every request that wants the container to 0, as a user cancels. */
async function cancel(
  ctx: CommandContext,
  target: Target,
  arg: string,
  json: boolean,
): Promise<void> {
  const n = named(arg);
  const api = target.api;
  let requests: Array<Pick<ContainerRequest, "uuid" | "state" | "priority" | "container_uuid">>;
  let uuid: string | null;
  if (n.kind === "request") {
    const cr = await found(
      target,
      `container request ${n.uuid}`,
      api.containerRequests.get(n.uuid),
    );
    requests = cr.state === "Committed" && cr.priority > 0 ? [cr] : [];
    uuid = cr.container_uuid;
  } else {
    uuid = n.uuid;
    await found(target, `container ${uuid}`, api.containers.get(uuid, { select: ["uuid"] }));
    requests = (
      await api.containerRequests.list({
        filters: [
          ["container_uuid", "=", uuid],
          ["state", "=", "Committed"],
          ["priority", ">", 0],
        ],
        select: ["uuid", "state", "priority", "container_uuid"],
      })
    ).items;
  }
  const cancelled: string[] = [];
  for (const r of requests) {
    await api.containerRequests.update(r.uuid, { priority: 0 });
    cancelled.push(r.uuid);
  }
  const c =
    uuid === null
      ? null
      : await api.containers.get(uuid, {
          select: ["uuid", "state", "priority", "exit_code", "runtime_status"],
        });
  if (json) {
    printJson(ctx, { cancelled_requests: cancelled, container: c });
    return;
  }
  const out = ctx.io.stdout;
  for (const r of cancelled) out(`container request ${r}: priority set to 0\n`);
  if (c === null) {
    out(`nothing to cancel: container request ${arg} has no container\n`);
    return;
  }
  if (cancelled.length === 0) {
    out(
      `nothing to cancel: no request wants container ${c.uuid} any more; it is ${stateText(c)}\n`,
    );
  } else if (isFinal(c.state)) {
    out(`container ${c.uuid} is already ${stateText(c)}\n`);
  } else if (c.priority > 0) {
    out(`container ${c.uuid} keeps priority ${c.priority}: another request still wants it\n`);
  } else if (c.state === "Queued") {
    out(
      `container ${c.uuid} stays Queued with priority 0 and will not run (raising a request's priority runs it after all)\n`,
    );
  } else if (c.state === "Locked") {
    out(
      `container ${c.uuid} is Locked: the dispatcher returns it to the queue, where it stays with priority 0 and does not run\n`,
    );
  } else {
    out(`container ${c.uuid} is Running: the dispatcher stops it and it ends Cancelled\n`);
  }
}

/** `container list | get | logs | cancel`: the containers of the cluster, for a person or a script. */
export function registerContainerCommands(program: Command, ctx: CommandContext): void {
  const container = clientCommand(program.command("container")).description(
    "list containers, show one, print its log, or cancel it",
  );

  clientCommand(container.command("list"))
    .description("the newest containers, as a table (--json: the API's answer)")
    .option("--config <file>", CONFIG_HELP)
    .option("--state <state>", "only containers in this state", parseState)
    .option("--limit <n>", "at most this many", positiveInt("--limit", 1000), 20)
    .option("--json", "print the API's list answer as JSON")
    .action(
      async (opts: { config?: string; state?: ContainerState; limit: number; json?: boolean }) => {
        await withTarget(ctx, opts.config, async (target) => {
          const params = {
            filters: opts.state === undefined ? [] : [["state", "=", opts.state] as const],
            order: ["created_at desc"],
            limit: opts.limit,
          };
          if (opts.json === true) {
            printJson(ctx, await target.api.containers.list(params));
            return;
          }
          const res = await target.api.containers.list({
            ...params,
            select: [
              "uuid",
              "state",
              "priority",
              "exit_code",
              "created_at",
              "command",
              "runtime_status",
            ],
          });
          if (res.items.length === 0) {
            ctx.io.stdout(`no ${opts.state === undefined ? "" : `${opts.state} `}containers\n`);
            return;
          }
          const rows = res.items.map((c) => [
            c.uuid,
            c.state === "Queued" && c.priority === 0 ? "Queued (on hold)" : c.state,
            c.exit_code === null ? "-" : String(c.exit_code),
            formatTime(c.created_at),
            truncate(shellCommand(c.command), 60),
          ]);
          ctx.io.stdout(table([["UUID", "STATE", "EXIT", "CREATED", "COMMAND"], ...rows]));
          const total = res.items_available ?? res.items.length;
          if (total > res.items.length) {
            ctx.io.stderr(`(${res.items.length} of ${total}; --limit shows more)\n`);
          }
        });
      },
    );

  clientCommand(container.command("get"))
    .description("a container's key fields (--json: its whole record)")
    .argument("<uuid>", "container UUID, or a container request UUID for its container")
    .option("--config <file>", CONFIG_HELP)
    .option("--json", "print the container record as JSON")
    .action(async (arg: string, opts: { config?: string; json?: boolean }) => {
      named(arg);
      await withTarget(ctx, opts.config, async (target) => {
        const uuid = await containerUuidOf(target, arg);
        if (opts.json === true) {
          printJson(ctx, await found(target, `container ${uuid}`, target.api.containers.get(uuid)));
        } else await showContainer(ctx, target, uuid);
      });
    });

  clientCommand(container.command("logs"))
    .description(
      "a container's log lines, each after its stream name (stdout, stderr, crunch-run, ...)",
    )
    .argument("<uuid>", "container UUID, or a container request UUID for its container")
    .option("--config <file>", CONFIG_HELP)
    .option("--follow", "keep printing new lines until the container is Complete or Cancelled")
    .option("--json", "print one log record per line as JSON")
    .action(async (arg: string, opts: { config?: string; follow?: boolean; json?: boolean }) => {
      named(arg);
      await withTarget(ctx, opts.config, async (target) => {
        const uuid = await containerUuidOf(target, arg);
        try {
          await followLogs(ctx, target, uuid, opts);
        } catch (err) {
          if (!ctx.io.stopSignal?.aborted) throw err;
          ctx.setExitCode(INTERRUPTED);
        }
      });
    });

  clientCommand(container.command("cancel"))
    .description(
      "cancel as a user does: set the priority of the requests that want the container to 0 (a Running container is stopped and ends Cancelled; a Queued one stays Queued and never runs)",
    )
    .argument("<uuid>", "container UUID (all its requests), or one container request UUID")
    .option("--config <file>", CONFIG_HELP)
    .option("--json", "print the cancelled requests and the container as JSON")
    .action(async (arg: string, opts: { config?: string; json?: boolean }) => {
      named(arg);
      await withTarget(ctx, opts.config, (target) => cancel(ctx, target, arg, opts.json === true));
    });
}
