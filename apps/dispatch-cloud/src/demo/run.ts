import path from "node:path";
import {
  DemoError,
  prepareDemo,
  startDemoCluster,
  type DemoCluster,
  type DemoSetup,
} from "./cluster.js";
import { sh, shellCommand } from "../client/format.js";
import { containerRequest } from "../client/request.js";
import {
  DEMO_SPEC,
  HELLO_COMMAND,
  containerObserver,
  logLines,
  submitContainer,
} from "./containers.js";
import { waitForAbort } from "../io.js";
import { demoFiles, repoRoot } from "./paths.js";
import { systemWatchClock, verdict, watchContainer, type WatchClock } from "../client/watch.js";

export const DEFAULT_TIMEOUT_MS = 2 * 60_000;

export interface DemoRunOptions {
  readonly dataDir: string;
  /** Run until `signal` aborts instead of submitting the hello-world container. */
  readonly keepRunning: boolean;
  readonly runnerPath: string;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  readonly timeoutMs?: number;
  readonly pollMs?: number;
  readonly clock?: WatchClock;
}

/**
 * How to use the running cluster from another terminal: the client commands, and one curl
 * request for people without the CLI. Tokens are read from the config, never printed.
 */
export function instructions(setup: DemoSetup): string {
  const cfg = setup.files.config;
  const api = setup.apiUrl.href.replace(/\/$/, "");
  const request = JSON.stringify({
    container_request: { ...containerRequest(DEMO_SPEC), name: "hello" },
  });
  return `Submit a container and watch it, from another terminal:

  cd ${sh(repoRoot())}
  export ARVADOS_CONFIG=${sh(cfg)}
  bin/dispatch-cloud submit --wait -- ${shellCommand(HELLO_COMMAND)}   # prints its UUID, follows it to the end
  bin/dispatch-cloud container list                 # the newest containers
  bin/dispatch-cloud container get UUID             # state, exit code, resources, scheduling status
  bin/dispatch-cloud container logs UUID --follow   # its stdout, stderr and crunch-run lines
  bin/dispatch-cloud container cancel UUID          # a running one is stopped and ends Cancelled
  bin/dispatch-cloud instance list --header         # the loopback "VM" and what runs there

Without the CLI, the same request with curl:

  token=$(sed -n 's/^ *SystemRootToken: "\\(.*\\)"$/\\1/p' ${sh(cfg)})
  curl -sS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \\
    -d ${sh(request)} \\
    ${api}/arvados/v1/container_requests
`;
}

function banner(setup: DemoSetup): string {
  const rel = (p: string) => path.relative(setup.files.dataDir, p);
  return `dispatch-cloud demo: cluster ${setup.loaded.clusterId} on this machine (loopback driver, embedded container API, bundled crunch-run)
  config:          ${setup.files.config}${setup.created ? " (generated now)" : " (found from an earlier run)"}
  data directory:  ${setup.files.dataDir} (${rel(setup.files.database)}, dispatcher log ${rel(setup.files.log)})
  container API:   ${setup.apiUrl.href}
  management API:  ${setup.managementUrl.href}
  dashboard:       ${new URL("dashboard/", setup.managementUrl).href} (the config's ManagementToken opens it)
`;
}

/** The demo, start to finish; returns the exit status. */
export async function runDemo(o: DemoRunOptions): Promise<number> {
  const files = demoFiles(o.dataDir);
  let setup: DemoSetup;
  let cluster: DemoCluster;
  try {
    setup = await prepareDemo(files, o.runnerPath);
    o.out(banner(setup));
    cluster = await startDemoCluster(setup, { runnerPath: o.runnerPath });
  } catch (err) {
    if (err instanceof DemoError) {
      o.err(`dispatch-cloud demo: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  try {
    if (!setup.created) o.out(await earlierRuns(cluster));
    if (o.keepRunning) {
      o.out(`\n${instructions(setup)}\nRunning; stop with Ctrl-C.\n`);
      await waitForAbort(o.signal);
      o.out("\nStopping...\n");
      return 0;
    }
    return await helloWorld(o, cluster);
  } finally {
    await cluster.stop();
    if (o.keepRunning) o.out("Stopped.\n");
  }
}

/** What crunch-run and the container said, for a container that did not succeed. */
async function diagnostics(cluster: DemoCluster, uuid: string): Promise<string> {
  const tail = (lines: string[]) =>
    lines
      .slice(-20)
      .map((l) => `  ${l}\n`)
      .join("") || "  (nothing)\n";
  const [runner, stderr] = await Promise.all([
    logLines(cluster.client, uuid, "crunch-run").catch(() => []),
    logLines(cluster.client, uuid, "stderr").catch(() => []),
  ]);
  return `crunch-run log:\n${tail(runner)}stderr:\n${tail(stderr)}`;
}

/** What the database holds from earlier runs, so a second run shows it found its data. */
async function earlierRuns(cluster: DemoCluster): Promise<string> {
  const res = await cluster.client.containers.list({
    select: ["uuid", "state"],
    order: ["created_at desc"],
    limit: 1,
  });
  const latest = res.items[0];
  const n = res.items_available ?? res.items.length;
  return latest === undefined
    ? "  database:        no containers from earlier runs\n"
    : `  database:        ${n} container${n === 1 ? "" : "s"} from earlier runs (latest ${latest.uuid}, ${latest.state})\n`;
}

async function helloWorld(o: DemoRunOptions, cluster: DemoCluster): Promise<number> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { client, management } = cluster;
  const { requestUuid, containerUuid } = await submitContainer(
    client,
    HELLO_COMMAND,
    "dispatch-cloud demo: hello",
    o.signal,
  );
  o.out(
    `\nSubmitted container request ${requestUuid}: ${shellCommand(HELLO_COMMAND)}\ncontainer ${containerUuid}\n`,
  );
  const outcome = await watchContainer({
    observe: containerObserver(client, management, containerUuid),
    onProgress: (line) => o.out(`${line}\n`),
    timeoutMs,
    pollMs: o.pollMs ?? 250,
    clock: o.clock ?? systemWatchClock,
    signal: o.signal,
  });
  const v = verdict(outcome, containerUuid, timeoutMs);
  if (outcome.kind === "final") {
    const c = outcome.observation;
    o.out(`\nFinal state: ${c.state}, exit code ${c.exitCode ?? "none"}\n`);
    const stdout = await logLines(client, containerUuid, "stdout");
    o.out(`stdout:\n${stdout.map((l) => `  ${l}\n`).join("") || "  (nothing)\n"}`);
  } else {
    // Nobody will wait for it any more: withdraw the request so nothing runs it later.
    await client.containerRequests.update(requestUuid, { priority: 0 }).catch(() => undefined);
  }
  if (!v.ok) {
    if (outcome.kind === "final") o.out(await diagnostics(cluster, containerUuid));
    o.err(`dispatch-cloud demo: ${v.reason}\n`);
    o.err(`dispatch-cloud demo: the dispatcher's log is ${cluster.logFile}\n`);
    return 1;
  }
  o.out("\nThe demo container ran and completed. Stopping everything.\n");
  return 0;
}
