import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { abortReason, type Clock } from "@dispatch-cloud/arvados-types";
import {
  createDriverRegistry,
  generateEd25519KeyPair,
  type CreateRequest,
  type DriverContext,
  type DriverRegistry,
  type Instance,
  type InstanceSet,
} from "@dispatch-cloud/cloud-driver-api";
import { testInstanceType } from "@dispatch-cloud/cloud-driver-api/testing";
import { createStubCloud, type FakeVm, type StubCloud } from "@dispatch-cloud/driver-stub/testing";
import { afterEach, describe, expect, test } from "vitest";
import { main, type CliIo } from "./main.js";
import { runCloudtest } from "./testing/cli.js";

// In-process runs of the whole CLI on the stub cloud. Each fake VM is a real ssh2 server on
// 127.0.0.1, so the boot probe and the secret check go over real SSH; cloud time is virtual.

const SECRET = "0123456789abcdef0123456789abcdef01234567";
const PID = 4242;
const SET_ID = "zzzzz-zzzzz-zzzzzzcloudtest";
const keyDir = mkdtempSync(path.join(tmpdir(), "cloudtest-test-"));
const keyFile = path.join(keyDir, "dispatch_key");
writeFileSync(keyFile, generateEd25519KeyPair("cloudtest-test").privateKey, { mode: 0o600 });

/**
 * A cluster config with the stub driver; each `cloudVMs` line (`Key: value`) goes under
 * Containers.CloudVMs, replacing the default line for that key.
 */
function config(cloudVMs: string[] = [], extra: string[] = []): string {
  const vms = new Map<string, string>([
    ["Driver", "stub"],
    ["ImageID", "img-1"],
    ["BootProbeCommand", '"true"'],
    ["ResourceTags", "{Owner: ops}"],
  ]);
  for (const line of cloudVMs) {
    const i = line.indexOf(":");
    vms.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return [
    "Clusters:",
    "  zzzzz:",
    `    SystemRootToken: ${"a".repeat(32)}`,
    `    ManagementToken: ${"a".repeat(32)}`,
    "    Services: {Controller: {ExternalURL: https://zzzzz.example}}",
    "    Containers:",
    `      DispatchPrivateKey: file://${keyFile}`,
    "      CloudVMs:",
    ...[...vms].map(([k, v]) => `        ${k}: ${v}`),
    "    InstanceTypes:",
    "      big: {ProviderType: b1, VCPUs: 4, RAM: 8GiB, Price: 0.4}",
    "      small: {ProviderType: s1, VCPUs: 1, RAM: 1GiB, Price: 0.1}",
    ...extra,
    "",
  ].join("\n");
}

/** Cloud time that passes only when the code under test sleeps, and at once. */
class VirtualClock implements Clock {
  t = Date.UTC(2030, 0, 1);
  slept = 0;
  onSleep: ((ms: number) => void) | undefined;
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.onSleep?.(ms);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    this.t += Math.max(0, ms);
    this.slept += Math.max(0, ms);
    return Promise.resolve();
  }
}

interface Harness {
  readonly cloud: StubCloud;
  /** The fake VMs cloudtest created (kept after destroy for inspection). */
  readonly created: FakeVm[];
  readonly creates: CreateRequest[];
  readonly contexts: DriverContext[];
  readonly drivers: DriverRegistry;
}

const clouds: StubCloud[] = [];
afterEach(async () => {
  await Promise.all(clouds.splice(0).map((c) => c.stop()));
});

/**
 * A stub cloud that outlives the run (so tests can inspect it) behind a `stub` driver;
 * `create` lets a test change what the cloud does with a create.
 */
function harness(
  options: {
    parameters?: Parameters<typeof createStubCloud>[0];
    create?: (
      req: CreateRequest,
      real: (r: CreateRequest) => Promise<Instance>,
    ) => Promise<Instance>;
  } = {},
): Harness {
  const cloud = createStubCloud(options.parameters);
  clouds.push(cloud);
  const created: FakeVm[] = [];
  const creates: CreateRequest[] = [];
  const contexts: DriverContext[] = [];
  const inner = cloud.instanceSet;
  const realCreate = async (req: CreateRequest): Promise<Instance> => {
    const inst = await inner.create(req);
    const vm = cloud.vm(inst.id);
    if (vm) created.push(vm);
    return inst;
  };
  const set: InstanceSet = {
    create: (req) => {
      creates.push(req);
      return options.create ? options.create(req, realCreate) : realCreate(req);
    },
    instances: (filter, signal) => inner.instances(filter, signal),
    instanceQuotaGroup: (t) => inner.instanceQuotaGroup(t),
    stop: () => Promise.resolve(),
  };
  const drivers = createDriverRegistry({
    stub: (ctx) => {
      contexts.push(ctx);
      return Promise.resolve(set);
    },
  });
  return { cloud, created, creates, contexts, drivers };
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  args: string[],
  yaml: string,
  io: Partial<CliIo> & { clock?: VirtualClock } = {},
): Promise<Outcome> {
  return runCloudtest(args, yaml, {
    pid: PID,
    clock: new VirtualClock(),
    newSecret: () => SECRET,
    ...io,
  });
}

/** The summary's line for a step. */
function summaryLine(out: string, step: string): string {
  const summary = out.slice(out.indexOf("cloudtest summary:"));
  return summary.split("\n").find((l) => l.includes(`  ${step}  `)) ?? `(no line for ${step})`;
}

describe("a healthy cloud", () => {
  test("every step passes, the instance carries the tags and secret, and is destroyed", async () => {
    const h = harness();
    const r = await run(["-command", "echo hello"], config(), { drivers: h.drivers });
    expect(r.code).toBe(0);
    for (const step of [
      "start cloud driver",
      "check for existing instances",
      "create instance",
      "check tags",
      "boot probe",
      "run command",
      "destroy instance",
    ]) {
      expect(r.stdout).toContain(`==> ${step} ...`);
      expect(summaryLine(r.stdout, step)).toMatch(/^ {2}PASS {2}/);
    }
    expect(r.stdout).toMatch(/<== create instance: passed in \d+\.\d+s: instance stub-000001/);
    expect(r.stdout).toContain("login to the instance with: ssh -p");
    expect(r.stdout).toContain("instance: stub-000001, destroyed and no longer listed");
    expect(r.stdout).toMatch(/result: PASSED/);
    expect(r.stderr).toMatch(/level=info msg=exiting\n$/);

    // The cheapest type, the configured image, the secret in the tags and the init command.
    expect(h.creates).toHaveLength(1);
    const req = h.creates[0];
    expect(req.instanceType.Name).toBe("small");
    expect(req.imageId).toBe("img-1");
    expect(req.tags).toEqual({
      Owner: "ops",
      ArvadosCloudTestPID: String(PID),
      ArvadosInstanceSetID: SET_ID,
      ArvadosInstanceSecret: SECRET,
    });
    expect(req.initCommand).toBe(
      `umask 0177 && echo -n "${SECRET}" >/var/run/arvados-instance-secret\n`,
    );
    expect(req.publicKey).toMatch(/^ssh-ed25519 /);
    // The driver got the shared tags and no metrics registry.
    expect(h.contexts[0]).toMatchObject({
      sharedResourceTags: { Owner: "ops", ArvadosCloudTestPID: String(PID) },
      registry: null,
      instanceSetId: SET_ID,
    });

    // Over SSH: the secret was checked (stub host keys are "not implemented"), then the probe
    // and the command ran, in that order.
    const cmds = h.created[0]?.commands.map((c) => c.command);
    expect(cmds).toEqual(["cat /var/run/arvados-instance-secret", "true", "echo hello"]);
    expect(h.cloud.vms()).toHaveLength(0);
    expect(h.cloud.calls("destroy").map((c) => c.instanceId)).toEqual(["stub-000001"]);

    // The secret never reaches the operator's screen or logs.
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });

  test("-instance-type and -image-id override the config; -destroy-existing=false parses", async () => {
    const h = harness();
    const r = await run(
      ["--instance-type=big", "-image-id", "img-9", "-destroy-existing=false"],
      config(),
      { drivers: h.drivers },
    );
    expect(r.code).toBe(0);
    expect(h.creates[0]?.instanceType.Name).toBe("big");
    expect(h.creates[0]?.imageId).toBe("img-9");
  });

  test("a failing -command fails the run but the instance is still destroyed", async () => {
    const h = harness();
    const r = await run(["-command", "false"], config(), { drivers: h.drivers });
    expect(r.code).toBe(1);
    expect(summaryLine(r.stdout, "run command")).toMatch(/FAIL .*"false" exited 1/);
    expect(summaryLine(r.stdout, "destroy instance")).toMatch(/PASS/);
    expect(r.stdout).toContain("result: FAILED (run command)");
  });
});

describe("failures", () => {
  test("a boot probe that never succeeds times out at TimeoutBooting; the instance is destroyed", async () => {
    const h = harness();
    const clock = new VirtualClock();
    const r = await run(
      [],
      config(['BootProbeCommand: "false"', "TimeoutBooting: 2m", "ProbeInterval: 10s"]),
      { drivers: h.drivers, clock },
    );
    expect(r.code).toBe(1);
    expect(summaryLine(r.stdout, "boot probe")).toMatch(
      /FAIL .* 2m0s {2}timed out after 2m0s \(TimeoutBooting\) after 12 attempt\(s\); last error: exit status 1/,
    );
    // Probed every ProbeInterval until the deadline, never longer.
    const probes = h.created[0]?.commands.filter((c) => c.command === "false");
    expect(probes).toHaveLength(12);
    expect(clock.slept).toBe(120_000);
    expect(summaryLine(r.stdout, "destroy instance")).toMatch(/PASS/);
    expect(h.cloud.vms()).toHaveLength(0);
    expect(r.stdout).toContain("result: FAILED (boot probe)");
  });

  test("a create error: waits for the instance until the boot deadline, then fails with nothing to destroy", async () => {
    const h = harness({ parameters: { parameters: { failCreate: { every: 1, kind: "quota" } } } });
    const clock = new VirtualClock();
    const r = await run([], config(["TimeoutBooting: 3m", "SyncInterval: 1m"]), {
      drivers: h.drivers,
      clock,
    });
    expect(r.code).toBe(1);
    expect(summaryLine(r.stdout, "create instance")).toMatch(
      /FAIL .*create failed: stub cloud: injected failure of create call #1; no instance appeared: timed out after 3m0s/,
    );
    expect(clock.slept).toBe(180_000);
    expect(r.stdout).toContain("instance: none was created");
    expect(r.stdout).not.toContain("==> boot probe");
    expect(h.cloud.calls("destroy")).toHaveLength(0);
    expect(r.stderr).toMatch(/level=error msg="error creating test instance" error=/);
  });

  test("a create that errors after the cloud made the VM: the VM is found and destroyed", async () => {
    const h = harness({
      create: async (req, real) => {
        await real(req);
        throw new Error("connection reset while waiting for the response");
      },
    });
    const r = await run([], config(), { drivers: h.drivers });
    expect(r.code).toBe(1);
    expect(summaryLine(r.stdout, "create instance")).toMatch(
      /FAIL .*create failed \(connection reset while waiting for the response\), but instance stub-000001 appeared/,
    );
    expect(summaryLine(r.stdout, "destroy instance")).toMatch(/PASS/);
    expect(h.cloud.vms()).toHaveLength(0);
  });

  test("a tag the cloud dropped is reported; the rest still runs and the instance is destroyed", async () => {
    const h = harness({
      create: (req, real) => {
        const { Owner: _dropped, ...tags } = req.tags;
        return real({ ...req, tags });
      },
    });
    const r = await run([], config(), { drivers: h.drivers });
    expect(r.code).toBe(1);
    expect(summaryLine(r.stdout, "check tags")).toMatch(
      /FAIL .*tag Owner is missing from test instance/,
    );
    expect(r.stderr).toMatch(/msg="tag is missing from test instance" ExpectedValue=.*Key=Owner/);
    expect(summaryLine(r.stdout, "boot probe")).toMatch(/PASS/);
    expect(summaryLine(r.stdout, "destroy instance")).toMatch(/PASS/);
    expect(r.stdout).toContain("result: FAILED (check tags)");
  });

  test("a destroy that fails is retried every SyncInterval until the instance is gone", async () => {
    const h = harness();
    h.cloud.failNext("destroy", new Error("API hiccup"));
    h.cloud.failNext("destroy", new Error("API hiccup again"));
    const clock = new VirtualClock();
    const r = await run([], config(["SyncInterval: 30s"]), { drivers: h.drivers, clock });
    expect(r.code).toBe(0);
    expect(summaryLine(r.stdout, "destroy instance")).toMatch(
      /PASS .* 1m0s {2}instance stub-000001 is gone \(3 destroy call\(s\)\)/,
    );
    expect(h.cloud.calls("destroy")).toHaveLength(3);
  });
});

describe("existing instances", () => {
  async function precreate(cloud: StubCloud, setId: string): Promise<string> {
    const inst = await cloud.instanceSet.create({
      instanceType: testInstanceType({ ProviderType: "s1", VCPUs: 1, RAM: 1, Price: 0.1 }),
      imageId: "img-1",
      tags: { ArvadosInstanceSetID: setId },
      initCommand: "",
      publicKey: null,
    });
    return inst.id;
  }

  test("without -destroy-existing: refuses to start and touches nothing", async () => {
    const h = harness();
    const ours = await precreate(h.cloud, SET_ID);
    const theirs = await precreate(h.cloud, "someone-else");
    const r = await run([], config(), { drivers: h.drivers });
    expect(r.code).toBe(1);
    expect(summaryLine(r.stdout, "check for existing instances")).toContain(`FAIL`);
    expect(r.stdout).toContain(
      `found 1 existing instance(s) (${ours}): cannot continue with existing instances -- clean up manually, use -destroy-existing=true, or choose a different -instance-set-id`,
    );
    expect(h.creates).toHaveLength(0);
    expect(h.cloud.calls("destroy")).toHaveLength(0);
    expect(
      h.cloud
        .vms()
        .map((v) => v.id)
        .sort(),
    ).toEqual([ours, theirs].sort());
    expect(r.stderr).toMatch(/msg="got instance list" .*N=2 Ours=1/);
  });

  test("with -destroy-existing: destroys only ours, waits SyncInterval, then runs the test", async () => {
    const h = harness();
    const ours = await precreate(h.cloud, SET_ID);
    const theirs = await precreate(h.cloud, "someone-else");
    const clock = new VirtualClock();
    const r = await run(["--destroy-existing"], config(["SyncInterval: 20s"]), {
      drivers: h.drivers,
      clock,
    });
    expect(r.code).toBe(0);
    expect(summaryLine(r.stdout, "check for existing instances")).toMatch(
      /PASS .*destroyed 1 existing instance\(s\)/,
    );
    expect(h.cloud.calls("destroy").map((c) => c.instanceId)).toEqual([ours, "stub-000003"]);
    expect(h.cloud.vms().map((v) => v.id)).toEqual([theirs]);
    expect(clock.slept).toBe(20_000);
  });
});

describe("Ctrl-C", () => {
  test("an interrupt during the boot probe still destroys the instance, and the run fails", async () => {
    const h = harness();
    const interrupt = new AbortController();
    const clock = new VirtualClock();
    // The operator presses Ctrl-C while cloudtest waits between boot probes.
    clock.onSleep = () => interrupt.abort(new Error("got SIGINT"));
    const r = await run([], config(['BootProbeCommand: "false"']), {
      drivers: h.drivers,
      clock,
      interrupt: interrupt.signal,
    });
    expect(r.code).toBe(1);
    expect(summaryLine(r.stdout, "boot probe")).toMatch(/INTR .*interrupted \(got SIGINT\)/);
    expect(summaryLine(r.stdout, "destroy instance")).toMatch(/PASS/);
    expect(h.cloud.vms()).toHaveLength(0);
    expect(r.stdout).toContain("instance: stub-000001, destroyed and no longer listed");
  });

  test("-pause-before-destroy prompts on stderr and destroys after Enter", async () => {
    const h = harness();
    let prompted = "";
    let stderrAtPrompt = "";
    let stderr = "";
    const code = await main(["-config", "-", "-pause-before-destroy"], {
      stdout: () => undefined,
      stderr: (s) => (stderr += s),
      env: {},
      readStdin: () => Promise.resolve(config()),
      waitForEnter: () => {
        prompted = "yes";
        stderrAtPrompt = stderr;
        // The instance is still there while the operator looks at it.
        expect(h.cloud.vms()).toHaveLength(1);
        return Promise.resolve();
      },
      pid: PID,
      clock: new VirtualClock(),
      drivers: h.drivers,
    });
    expect(code).toBe(0);
    expect(prompted).toBe("yes");
    expect(stderrAtPrompt).toMatch(/Press Enter to continue: $/);
    expect(h.cloud.vms()).toHaveLength(0);
  });
});

describe("several subnets", () => {
  test("one run per SubnetID, each given a single subnet; success needs all of them", async () => {
    const h = harness();
    const r = await run([], config(["DriverParameters: {SubnetID: [subnet-a, subnet-b]}"]), {
      drivers: h.drivers,
    });
    expect(r.code).toBe(0);
    expect(h.contexts.map((c) => c.parameters["SubnetID"])).toEqual(["subnet-a", "subnet-b"]);
    expect(r.stdout).toContain("=== SubnetID[0] subnet-a");
    expect(r.stdout).toContain(" SubnetID[1] subnet-b:");
    expect(r.stderr).toContain('msg="running tests using SubnetID[1] subnet-b"');
    expect(h.creates).toHaveLength(2);
  });

  test("one run per GCE zone, each given a list of that one zone", async () => {
    const h = harness();
    const r = await run([], config(["DriverParameters: {zones: [us-east1-b, us-east1-c]}"]), {
      drivers: h.drivers,
    });
    expect(r.code).toBe(0);
    expect(h.contexts.map((c) => c.parameters["zones"])).toEqual([["us-east1-b"], ["us-east1-c"]]);
    expect(r.stdout).toContain("=== zones[1] us-east1-c");
    expect(r.stderr).toContain('msg="running tests using zones[0] us-east1-b"');
    expect(h.creates).toHaveLength(2);
  });

  test("a single-element list is one run with the parameters as written", async () => {
    const h = harness();
    const r = await run([], config(["DriverParameters: {subnetid: [subnet-a]}"]), {
      drivers: h.drivers,
    });
    expect(r.code).toBe(0);
    expect(h.contexts.map((c) => c.parameters["subnetid"])).toEqual([["subnet-a"]]);
  });
});

describe("command line and config errors", () => {
  test.each([
    [["-bogus"], 2, "unknown option '--bogus'"],
    [["extra-argument"], 2, "too many arguments"],
    [["-destroy-existing=maybe"], 2, 'invalid boolean value "maybe" for -destroy-existing'],
    [["-instance-type"], 2, "option '--instance-type <string>' argument missing"],
    [["-help"], 0, "--pause-before-destroy"],
    [["--help"], 0, "--pause-before-destroy"],
  ])("%j exits %i", async (args, code, message) => {
    const h = harness();
    const r = await run(args, config(), { drivers: h.drivers });
    expect(r.code).toBe(code);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe("");
    expect(h.creates).toHaveLength(0);
  });

  test.each([
    [config(["Driver: gce"]), 'fatal: unsupported cloud driver \\"gce\\"'],
    [
      config([], []).replace(/ {4}InstanceTypes:\n.*\n.*\n/, ""),
      "no instance types are configured",
    ],
    [
      config().replace(/ {6}DispatchPrivateKey: .*\n/, ""),
      "error loading Containers.DispatchPrivateKey",
    ],
  ])("config problem %#: exit 1", async (yaml, message) => {
    const r = await run([], yaml, { drivers: harness().drivers });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toMatch(/level=info msg=exiting\n$/);
    expect(r.stdout).toBe("");
  });

  test("an unknown -instance-type is named", async () => {
    const r = await run(["-instance-type", "huge"], config(), { drivers: harness().drivers });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('requested instance type \\"huge\\" is not configured');
  });

  test("the config defaults to $ARVADOS_CONFIG, then /etc/arvados/config.yml", async () => {
    let stderr = "";
    const io = {
      stdout: () => undefined,
      stderr: (s: string) => (stderr += s),
      readStdin: () => Promise.resolve(""),
      waitForEnter: () => Promise.resolve(),
      pid: PID,
    };
    expect(await main([], { ...io, env: { ARVADOS_CONFIG: "/nonexistent/site.yml" } })).toBe(1);
    expect(stderr).toContain("/nonexistent/site.yml");
    stderr = "";
    expect(await main([], { ...io, env: {} })).toBe(1);
    expect(stderr).toContain("/etc/arvados/config.yml");
  });
});
