// The client commands as a person runs them: the built CLI in child processes, against the
// embedded container API run by `dispatch-cloud container-api`, and (`submit --wait`, scheduling
// status, cancel) against a dispatcher on the stub cloud.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import { selfSignedCertificate } from "@dispatch-cloud/arvados-types/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  APP_DIR,
  freePort,
  instances,
  runCli,
  startApiPeer,
  startDaemon,
  waitListening,
  writeConfig,
  type ApiPeer,
  type Daemon,
  type TestConfig,
} from "./harness.js";

const root = path.resolve(APP_DIR, "../..");
beforeAll(() => {
  execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-b", APP_DIR], { stdio: "pipe" });
});

const cli = (args: readonly string[], env: Record<string, string> = {}) => runCli(args, env).output;

/** A child whose output can be awaited while it runs. */
function start(args: readonly string[], env: Record<string, string>) {
  const { child, output } = runCli(args, env);
  let stdout = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  const exited = output.then((o) => o.code);
  return {
    child,
    exited,
    stdout: () => stdout,
    /** Resolves once stdout contains `text`; fails with the output if the child exits first. */
    async until(text: string): Promise<void> {
      await vi.waitFor(
        () => {
          if (!stdout.includes(text)) {
            if (child.exitCode !== null) throw new Error(`exited: ${stdout}`);
            throw new Error(`waiting for ${JSON.stringify(text)}`);
          }
        },
        { timeout: 30_000, interval: 50 },
      );
    },
  };
}

/** Each command is a node process of its own: on a busy 2-core machine, a test of many is slow. */
const MANY_PROCESSES = 180_000;

const UUID_LINE = /^(zzzzz-dz642-[0-9a-z]{15})\n$/;

describe("container-api, submit and container commands", () => {
  let dir: string;
  let config: string;
  let token: string;
  let url: string;
  let server: ReturnType<typeof start>;
  let admin: ArvadosClient;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "dispatch-cloud-client-"));
    token = `systemroot${randomBytes(16).toString("hex")}`;
    url = `http://127.0.0.1:${await freePort()}/`;
    config = path.join(dir, "config.yml");
    fs.writeFileSync(
      config,
      `Clusters:\n  zzzzz:\n    SystemRootToken: ${token}\n    Services:\n      Controller: {ExternalURL: "${url}"}\n`,
    );
    env = { ARVADOS_CONFIG: config };
    server = start(["container-api", "--db", path.join(dir, "db.sqlite")], env);
    await server.until("\n");
    admin = new ArvadosClient({ apiHost: url, token });
  });

  afterAll(async () => {
    server?.child.kill("SIGKILL");
    await admin?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it(
    "submit → get → logs → cancel, with --json for scripts; the API keeps its data across a restart",
    async () => {
      expect(server.stdout()).toBe(
        `container API for cluster zzzzz listening on ${url} (database: ${path.join(dir, "db.sqlite")})\n`,
      );

      // submit: every flag reaches the request.
      const submitted = await cli(
        [
          "submit",
          "--priority",
          "7",
          "--vcpus",
          "2",
          "--ram",
          "1.5GiB",
          "--scratch",
          "550MiB",
          "--image",
          "example/image",
          "--preemptible",
          "--",
          "sh",
          "-c",
          "echo hi -x",
        ],
        env,
      );
      expect({ code: submitted.code, stderr: submitted.stderr }).toEqual({ code: 0, stderr: "" });
      const uuid = UUID_LINE.exec(submitted.stdout)?.[1] ?? "";
      const record = await admin.containers.get(uuid);
      expect({
        command: record.command,
        image: record.container_image,
        vcpus: record.runtime_constraints.vcpus,
        ram: record.runtime_constraints.ram,
        scratch: record.mounts?.["/out"],
        preemptible: record.scheduling_parameters.preemptible,
      }).toEqual({
        command: ["sh", "-c", "echo hi -x"],
        image: "example/image",
        vcpus: 2,
        ram: 1610612736,
        scratch: { kind: "tmp", capacity: 576716800 },
        preemptible: true,
      });
      const [request] = (
        await admin.containerRequests.list({ filters: [["container_uuid", "=", uuid]] })
      ).items;
      expect(request?.priority).toBe(7);

      // get: key fields for a person; the whole record with --json; a request UUID means its container.
      const got = await cli(["container", "get", uuid], env);
      expect(got.code).toBe(0);
      for (const line of [
        `uuid:       ${uuid}`,
        "state:      Queued",
        "command:    sh -c 'echo hi -x'",
        `requests:   ${request?.uuid} (Committed, priority 7)`,
        "resources:  2 VCPUs, 1.5 GiB RAM, 550 MiB scratch",
        "scheduling: preemptible instance",
        "dispatcher: (not configured: no scheduling status)",
      ]) {
        expect(got.stdout).toContain(`${line}\n`);
      }
      const json = await cli(["container", "get", request?.uuid ?? "", "--json"], env);
      expect((JSON.parse(json.stdout) as { uuid: string }).uuid).toBe(uuid);

      // logs: what crunch-run writes, then --follow until the container is final.
      await admin.containers.lock(uuid);
      await admin.containers.update(uuid, { state: "Running" });
      const log = (eventType: string, text: string) =>
        admin.logs.create({ object_uuid: uuid, event_type: eventType, properties: { text } });
      await log("stdout", "hello\nworld\n");
      await log("stderr", "oops\n");
      await log("update", "an audit record, not a log line\n");
      const logs = await cli(["container", "logs", uuid], env);
      expect(logs).toEqual({
        code: 0,
        stdout: "stdout     hello\nstdout     world\nstderr     oops\n",
        stderr: "",
      });
      const logsJson = await cli(["container", "logs", uuid, "--json"], env);
      expect(
        logsJson.stdout
          .trim()
          .split("\n")
          .map((l) => (JSON.parse(l) as { event_type: string }).event_type),
      ).toEqual(["stdout", "stderr"]);
      const follow = start(["container", "logs", uuid, "--follow"], env);
      await follow.until("stderr     oops\n");
      await log("crunch-run", "container exited with code 0\n");
      await admin.containers.update(uuid, { state: "Complete", exit_code: 0 });
      expect(await follow.exited).toBe(0);
      expect(follow.stdout()).toBe(
        "stdout     hello\nstdout     world\nstderr     oops\ncrunch-run container exited with code 0\n",
      );

      // list: a table, or the API's answer.
      const listed = await cli(["container", "list", "--state", "complete"], env);
      expect(listed.stdout.split("\n")[0]).toMatch(/^UUID +STATE +EXIT +CREATED +COMMAND$/);
      expect(listed.stdout.split("\n")[1]).toMatch(
        new RegExp(
          `^${uuid} +Complete +0 +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ +sh -c 'echo hi -x'$`,
        ),
      );
      const listedJson = JSON.parse((await cli(["container", "list", "--json"], env)).stdout) as {
        items: { uuid: string }[];
      };
      expect(listedJson.items.map((c) => c.uuid)).toEqual([uuid]);

      // cancel, as a user: the request's priority goes to 0; a Queued container is on hold.
      const second = UUID_LINE.exec(
        (await cli(["submit", "--", "sleep", "1000"], env)).stdout,
      )?.[1];
      const cancelled = await cli(["container", "cancel", second ?? ""], env);
      expect(cancelled.code).toBe(0);
      expect(cancelled.stdout).toMatch(
        new RegExp(
          `^container request zzzzz-xvhdp-\\w{15}: priority set to 0\ncontainer ${second} stays Queued with priority 0 and will not run`,
        ),
      );
      const held = await admin.containers.get(second ?? "");
      expect([held.state, held.priority]).toEqual(["Queued", 0]);
      const again = await cli(["container", "cancel", second ?? "", "--json"], env);
      expect(JSON.parse(again.stdout)).toMatchObject({
        cancelled_requests: [],
        container: { uuid: second, state: "Queued", priority: 0 },
      });

      // SIGTERM stops it cleanly; started again on the same file, it has everything.
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      server = start(["container-api", "--db", path.join(dir, "db.sqlite")], env);
      await server.until("\n");
      expect((await cli(["container", "get", uuid], env)).stdout).toContain(
        "state:      Complete, exit code 0\n",
      );
    },
    MANY_PROCESSES,
  );

  it(
    "gives one line on stderr and exit status 1 for every kind of bad input",
    async () => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const missing = "zzzzz-dz642-000000000000000";
      const cases: Array<[string[], Record<string, string>, RegExp]> = [
        [["container", "get", missing], env, /^container zzzzz-dz642-0{15} not found at http:/],
        [
          ["container", "logs", "zzzzz-xvhdp-000000000000000"],
          env,
          /^container request .* not found/,
        ],
        [["container", "get", "i-0123"], env, /^"i-0123" is not a container UUID/],
        [["submit", "--ram", "12XB", "--", "true"], env, /^--ram "12XB": invalid unit "XB"/],
        [["submit"], env, /^missing required argument 'CMD'$/],
        [
          ["container", "list", "--limt", "3"],
          env,
          /^unknown option '--limt' \(Did you mean --limit\?\)$/,
        ],
        [
          ["container", "list"],
          { ARVADOS_API_HOST: closed, ARVADOS_API_TOKEN: "x" },
          /^cannot reach http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/,
        ],
        [
          ["container", "list"],
          { ARVADOS_API_HOST: url, ARVADOS_API_TOKEN: "wrongtoken" },
          /^http:\/\/127\.0\.0\.1:\d+ refused the token \(401 Unauthorized: Not logged in\): check ARVADOS_API_TOKEN$/,
        ],
        [
          ["container", "list", "--config", path.join(dir, "none.yml")],
          {},
          /none\.yml: cannot read the config file/,
        ],
        [["container-api"], env, /^cannot listen on 127\.0\.0\.1:\d+: the address is in use$/],
      ];
      const results = await Promise.all(
        cases.map(async ([args, e, pattern]) => ({ args, pattern, r: await cli(args, e) })),
      );
      for (const { args, pattern, r } of results) {
        expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 1, stdout: "" });
        expect(r.stderr).toMatch(/^dispatch-cloud: [^\n]+\n$/);
        expect(r.stderr.slice("dispatch-cloud: ".length).trimEnd()).toMatch(pattern);
      }
    },
    MANY_PROCESSES,
  );

  it(
    "takes ARVADOS_API_HOST and ARVADOS_API_TOKEN, over https too, unless a config file is named",
    async () => {
      const api = { ARVADOS_API_HOST: url, ARVADOS_API_TOKEN: token };
      const listed = await cli(["container", "list", "--json"], api);
      expect(listed.code).toBe(0);
      expect((JSON.parse(listed.stdout) as { items: unknown[] }).items.length).toBeGreaterThan(0);

      // An https front with a self-signed certificate: refused unless ARVADOS_API_HOST_INSECURE.
      const tls = await httpsProxy(url);
      try {
        const host = { ARVADOS_API_HOST: `127.0.0.1:${tls.port}`, ARVADOS_API_TOKEN: token };
        const strict = await cli(["container", "list"], host);
        expect(strict.code).toBe(1);
        expect(strict.stderr).toMatch(
          /^dispatch-cloud: cannot reach https:\/\/127\.0\.0\.1:\d+: .*certificate.* \(ARVADOS_API_HOST_INSECURE=1/,
        );
        const lax = await cli(["container", "list"], { ...host, ARVADOS_API_HOST_INSECURE: "1" });
        expect(lax.code).toBe(0);
        expect(lax.stdout).toMatch(/^UUID +STATE/);
      } finally {
        await tls.close();
      }

      // A config named by ARVADOS_CONFIG wins over the variables (here pointing nowhere).
      const both = await cli(["container", "list", "--json"], {
        ...env,
        ARVADOS_API_HOST: "127.0.0.1:1",
        ARVADOS_API_TOKEN: "x",
      });
      expect(both.code).toBe(0);
    },
    MANY_PROCESSES,
  );
});

describe("submit --wait and scheduling status from a dispatcher on the stub cloud", () => {
  let peer: ApiPeer;
  let cfg: TestConfig;
  let daemon: Daemon;

  beforeAll(async () => {
    peer = await startApiPeer();
    cfg = writeConfig({
      controllerUrl: peer.url,
      token: peer.token,
      port: await freePort(),
      // The first VM boots at once; the second never does within the test.
      driverParameters: { ContainerExitCode: 3, SlowBootEvery: 2, SlowBootDelay: "1h" },
      cloudVMs: { TimeoutIdle: "1h", TimeoutBooting: "1h" },
    });
    daemon = startDaemon(cfg.path);
    await waitListening(daemon);
  });

  afterAll(async () => {
    await daemon?.stop();
    await peer?.stop();
    cfg?.cleanup();
  });

  it(
    "follows to the exit code, through retries to Cancelled, and shows why a container waits",
    async () => {
      const env = { ARVADOS_CONFIG: cfg.path };
      const [ran, unsatisfiable] = await Promise.all([
        cli(["submit", "--wait", "--", "true"], env),
        cli(["submit", "--wait", "--ram", "64GiB", "--", "true"], env),
      ]);

      // The container's own exit code, after progress lines on stderr.
      const uuid = UUID_LINE.exec(ran.stdout)?.[1];
      expect(uuid).toBeDefined();
      expect(ran.code).toBe(3);
      const lines = ran.stderr.trim().split("\n");
      expect(lines.at(-2)).toMatch(/^\[ *\d+\.\ds\] +complete +container Complete +exit code 3$/);
      expect(lines.at(-1)).toBe(`container ${uuid} Complete, exit code 3`);
      expect(ran.stderr).not.toContain("no dispatcher management API");

      // No instance type has 64 GiB: the dispatcher cancels it, the request retries it
      // (Containers.MaxRetryAttempts, 3), and the last one's reason is the exit message.
      expect(unsatisfiable.code).toBe(1);
      const first = UUID_LINE.exec(unsatisfiable.stdout)?.[1];
      const stderr = unsatisfiable.stderr.trim().split("\n");
      const retry =
        /^container (\S+) ended Cancelled: constraints not satisfiable by any configured instance type; the request tries again \(attempt (\d) of 3\) as container (\S+)$/;
      const retries = stderr.flatMap((l) => {
        const m = retry.exec(l);
        return m === null ? [] : [{ from: m[1], attempt: Number(m[2]), to: m[3] }];
      });
      // Every attempt is followed; one that ends between two looks shows in the count only.
      expect(retries[0]?.from).toBe(first);
      expect(retries.at(-1)?.attempt).toBe(3);
      const last = retries.at(-1)?.to;
      expect(stderr.at(-1)).toBe(
        `dispatch-cloud: container ${last} was Cancelled: constraints not satisfiable by any configured instance type`,
      );

      // Hold the one VM: the next container needs a second, which stays booting, so the
      // dispatcher's status for it is stable enough to read.
      const [vm] = await instances(cfg.url);
      const hold = await cli(["instance", "hold", vm?.instance ?? ""], env);
      expect(hold.code).toBe(0);
      const waiting = UUID_LINE.exec((await cli(["submit", "--", "true"], env)).stdout)?.[1] ?? "";
      await vi.waitFor(
        async () => {
          const got = await cli(["container", "get", waiting], env);
          expect(got.stdout).toContain("state:      Locked\n");
          expect(got.stdout).toContain(
            "dispatcher: Waiting for a small instance to boot and be ready to accept work.\n",
          );
        },
        { timeout: 30_000, interval: 200 },
      );

      // Cancelled while Locked: the dispatcher gives it back, and it stays Queued at priority 0.
      const cancelled = await cli(["container", "cancel", waiting], env);
      expect(cancelled.stdout).toContain(
        `container ${waiting} is Locked: the dispatcher returns it to the queue, where it stays with priority 0 and does not run\n`,
      );
      await vi.waitFor(
        async () => {
          const c = await peer.client.containers.get(waiting);
          expect([c.state, c.priority]).toEqual(["Queued", 0]);
        },
        { timeout: 30_000, interval: 200 },
      );
      expect((await cli(["container", "get", waiting], env)).stdout).toContain(
        "dispatcher: This container will not be scheduled to run because its priority is 0 and state is Queued.\n",
      );
    },
    MANY_PROCESSES,
  );
});

/** An https server with a self-signed certificate in front of `target`. */
async function httpsProxy(target: string) {
  const server = https.createServer(selfSignedCertificate(), (req, res) => {
    const upstream = http.request(
      new URL(req.url ?? "/", target),
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
