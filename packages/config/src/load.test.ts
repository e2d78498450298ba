import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { loadConfig, type LoadResult } from "./index.js";

const examples = path.resolve(import.meta.dirname, "../../../examples");
const rsaPem = readFileSync(path.join(examples, "ec2.yml"), "utf8")
  .split("\n")
  .filter((l) => /^ {8}(-----|[A-Za-z0-9+/=]+$)/.test(l))
  .map((l) => l.trim())
  .join("\n");
const GiB = 2 ** 30;
const goodToken = "a".repeat(32);

/** A minimal valid cluster with `extra` YAML (indented for the cluster level) appended. */
function yaml(
  extra = "",
  tokens = `ManagementToken: ${goodToken}\n    SystemRootToken: ${goodToken}`,
): string {
  return `Clusters:\n  zzzzz:\n    ${tokens}\n    Services:\n      Controller:\n        ExternalURL: https://zzzzz.example\n${extra}`;
}

async function load(text: string): Promise<LoadResult> {
  return loadConfig({ text, path: "config.yml" });
}

function errorsOf(r: LoadResult): string[] {
  return r.ok ? [] : r.errors.map((e) => e.text);
}
function warningsOf(r: LoadResult): string[] {
  return r.warnings.map((w) => w.text);
}
function loaded(r: LoadResult) {
  if (!r.ok)
    throw new Error(`expected a usable config, got:\n${r.errors.map((e) => e.text).join("\n")}`);
  return r.config;
}

describe("defaults", () => {
  test("an almost empty cluster gets Arvados's defaults", async () => {
    const c = loaded(await load(yaml())).cluster;
    const vms = c.Containers.CloudVMs;
    expect(vms).toMatchObject({
      Enable: false,
      Driver: "ec2",
      SSHPort: "22",
      BootProbeCommand: "systemctl is-system-running",
      PollInterval: 10_000,
      ProbeInterval: 10_000,
      MaxProbesPerSecond: 10,
      SyncInterval: 60_000,
      TimeoutIdle: 60_000,
      TimeoutBooting: 600_000,
      TimeoutProbe: 600_000,
      TimeoutShutdown: 10_000,
      TimeoutSignal: 5_000,
      TimeoutTERM: 120_000,
      TimeoutStaleRunLock: 5_000,
      MaxCloudOpsPerSecond: 10,
      MaxConcurrentInstanceCreateOps: 1,
      MaxInstances: 64,
      MaxRunningContainersPerInstance: 0,
      InitialQuotaEstimate: 0,
      SupervisorFraction: 0.5,
      ImageID: "",
      InstanceInitCommand: "",
      DeployRunnerBinary: "/proc/self/exe",
      DeployRunnerDirectory: "/tmp/arvados-crunch-run",
      DeployPublicKey: true,
      ResourceTags: {},
      TagKeyPrefix: "Arvados",
      DriverParameters: {},
    });
    expect(c.Containers).toMatchObject({
      StaleLockTimeout: 60_000,
      CrunchRunCommand: "crunch-run",
      CrunchRunArgumentsList: [],
      ReserveExtraRAM: 550 * 2 ** 20,
      RuntimeEngine: "docker",
      LocalKeepBlobBuffersPerVCPU: 1,
      LocalKeepLogsToContainerLog: "none",
      PreemptiblePriceFactor: 0,
      MaximumPriceFactor: 1.5,
      MaxDispatchAttempts: 10,
      MaxRetryAttempts: 3,
      DispatchPrivateKey: "",
      SupportedDockerImageFormats: ["v2"],
      MinRetryPeriod: 0,
    });
    expect(c.API).toMatchObject({
      MaxConcurrentRequests: 64,
      MaxQueuedRequests: 128,
      MaxItemsPerResponse: 1000,
    });
    expect(c.InstanceTypes).toEqual({});
  });

  test("null values keep the default; SAMPLE entries are dropped", async () => {
    const c = loaded(
      await load(
        yaml(
          `    Containers:\n      CloudVMs:\n        MaxInstances: ~\n        ResourceTags:\n          SAMPLE: x\n          team: blue\n`,
        ),
      ),
    ).cluster;
    expect(c.Containers.CloudVMs.MaxInstances).toBe(64);
    expect(c.Containers.CloudVMs.ResourceTags).toEqual({ team: "blue" });
  });

  test("user instance types get no defaults beyond ProviderType = name and computed Scratch", async () => {
    const c = loaded(
      await load(
        yaml(
          `    InstanceTypes:\n      tiny:\n        VCPUs: 1\n        IncludedScratch: 1GB\n        AddedScratch: 2GB\n`,
        ),
      ),
    ).cluster;
    expect(c.InstanceTypes["tiny"]).toEqual({
      Name: "tiny",
      ProviderType: "tiny",
      VCPUs: 1,
      RAM: 0,
      IncludedScratch: 1e9,
      AddedScratch: 2e9,
      Scratch: 3e9,
      Price: 0,
      Preemptible: false,
      GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
    });
  });

  test("SecurityGroupIDs-style sets are accepted as lists or maps; URLs get a / path", async () => {
    const c = loaded(
      await load(
        yaml(
          `    Containers:\n      SupportedDockerImageFormats: [v1, v2]\n    Services:\n      Controller:\n        ExternalURL: https://zzzzz.example\n      DispatchCloud:\n        InternalURLs:\n          "http://localhost:9006": {}\n`,
        ).replace(
          /    Services:\n      Controller:\n        ExternalURL: https:\/\/zzzzz.example\n/,
          "",
        ),
      ),
    ).cluster;
    expect(c.Containers.SupportedDockerImageFormats).toEqual(["v1", "v2"]);
    expect(Object.keys(c.Services["DispatchCloud"]?.InternalURLs ?? {})).toEqual([
      "http://localhost:9006/",
    ]);
    expect(c.Services["Controller"]?.ExternalURL).toBe("https://zzzzz.example/");
  });

  test("YAML 1.1 booleans and unquoted numbers in string fields read as Go's yaml does", async () => {
    const c = loaded(
      await load(
        yaml(
          `    Containers:\n      CloudVMs:\n        Enable: yes\n        DeployPublicKey: off\n        SSHPort: 2222\n`,
        ),
      ),
    ).cluster;
    expect(c.Containers.CloudVMs).toMatchObject({
      Enable: true,
      DeployPublicKey: false,
      SSHPort: "2222",
    });
  });

  test("YAML merge keys work", async () => {
    const c = loaded(
      await load(
        yaml(
          `    InstanceTypes:\n      a: &base\n        VCPUs: 2\n        RAM: 4GiB\n      b:\n        <<: *base\n        VCPUs: 4\n`,
        ),
      ),
    ).cluster;
    expect(c.InstanceTypes["b"]).toMatchObject({ VCPUs: 4, RAM: 4 * GiB });
  });
});

describe("every validation message", () => {
  test("several problems are all reported in one run, one line each starting with the key path", async () => {
    const r = await load(
      yaml(`    Containers:
      StaleLockTimeout: 10
      ReserveExtraRAM: lots
      LocalKeepLogsToContainerLog: some
      CloudVMs:
        MaxInstances: many
        SupervisorFraction: half
        Enable: maybe
        TimeoutIdle: 1x
        SSHPort: [22]
        DriverParameters: [a]
        CrunchRunArgumentsList: 1
    InstanceTypes:
      x1md:
        RAM: 64GeeB
        IncludedScratch: 100EiB
        VCPUs: 1.5
`),
    );
    expect(errorsOf(r)).toEqual([
      'Clusters.zzzzz.Containers.StaleLockTimeout: 10 is not a duration: missing unit in duration "10" (examples: 300ms, 10s, 1m30s, 2h)',
      'Clusters.zzzzz.Containers.ReserveExtraRAM: "lots" is not a byte size (examples: 64GiB, 128GB)',
      'Clusters.zzzzz.Containers.LocalKeepLogsToContainerLog: unacceptable value "some", must be one of: "none", "all", "errors"',
      'Clusters.zzzzz.Containers.CloudVMs.Enable: "maybe" is not a boolean (true or false)',
      "Clusters.zzzzz.Containers.CloudVMs.SSHPort: expected a string, got a list",
      'Clusters.zzzzz.Containers.CloudVMs.TimeoutIdle: "1x" is not a duration: unknown unit "x" in duration "1x" (examples: 300ms, 10s, 1m30s, 2h)',
      'Clusters.zzzzz.Containers.CloudVMs.MaxInstances: "many" is not a whole number',
      'Clusters.zzzzz.Containers.CloudVMs.SupervisorFraction: "half" is not a number',
      "Clusters.zzzzz.Containers.CloudVMs.DriverParameters: expected a map, got a list",
      "Clusters.zzzzz.InstanceTypes.x1md.VCPUs: 1.5 is not a whole number",
      'Clusters.zzzzz.InstanceTypes.x1md.RAM: "64GeeB" is not a byte size (examples: 64GiB, 128GB)',
      'Clusters.zzzzz.InstanceTypes.x1md.IncludedScratch: "100EiB" is too large: size "100EiB" overflows int64',
    ]);
    // CrunchRunArgumentsList sits under CloudVMs here, where nobody reads it.
    expect(warningsOf(r)).toContain(
      "deprecated or unknown config entry: Clusters.zzzzz.Containers.CloudVMs.CrunchRunArgumentsList",
    );
  });

  test("unknown and mis-cased keys are warnings; a mis-cased key is dropped", async () => {
    const r = await load(
      yaml(`    Containers:
      cloudvms:
        MaxInstances: 3
      CloudVMs:
        MaxInstaces: 5
        Scratch: 1
    InstanceTypes:
      a:
        Scratch: 10GB
        Ram: 1GiB
    Bogus: 1
Extra: 2
`),
    );
    const c = loaded(r).cluster;
    expect(c.Containers.CloudVMs.MaxInstances).toBe(64);
    expect(c.InstanceTypes["a"]).toMatchObject({ Scratch: 0, RAM: 0 });
    expect(warningsOf(r)).toEqual([
      "deprecated or unknown config entry: Extra",
      "deprecated or unknown config entry: Clusters.zzzzz.Containers.CloudVMs.MaxInstaces",
      "deprecated or unknown config entry: Clusters.zzzzz.Containers.CloudVMs.Scratch",
      "deprecated or unknown config entry: Clusters.zzzzz.Containers.cloudvms (perhaps you meant CloudVMs?)",
      "deprecated or unknown config entry: Clusters.zzzzz.InstanceTypes.a.Scratch",
      "deprecated or unknown config entry: Clusters.zzzzz.InstanceTypes.a.Ram (perhaps you meant RAM?)",
      "deprecated or unknown config entry: Clusters.zzzzz.Bogus",
      "Clusters.zzzzz.Containers.DispatchPrivateKey: not set; the dispatcher and cloudtest need it to log in to VMs",
    ]);
  });

  test("sections other components own pass through without warnings", async () => {
    const r = await load(
      yaml(
        `    Collections:\n      BlobSigningKey: abc\n    Users:\n      AnonymousUserToken: def\n    API:\n      MaxRequestSize: 1000\n    TLS:\n      Certificate: /x\n`,
      ),
    );
    const c = loaded(r).cluster;
    expect(c.Collections).toEqual({ BlobSigningKey: "abc" });
    expect(c.API["MaxRequestSize"]).toBe(1000);
    expect(warningsOf(r).filter((w) => w.startsWith("deprecated"))).toEqual([]);
  });

  test.each([
    ["", "secret token is not set (use 32+ random characters from a-z, A-Z, 0-9)", "warning"],
    ["abc123", "token is too short (should be at least 32 characters)", "warning"],
    [
      `${"a".repeat(40)}-x`,
      "unacceptable characters in token (only a-z, A-Z, 0-9 are acceptable)",
      "error",
    ],
  ])("token %j: %s", async (token, message, severity) => {
    const r = await load(yaml("", `ManagementToken: "${token}"\n    SystemRootToken: "${token}"`));
    const lines = severity === "error" ? errorsOf(r) : warningsOf(r);
    expect(lines).toContain(`Clusters.zzzzz.ManagementToken: ${message}`);
    expect(lines).toContain(`Clusters.zzzzz.SystemRootToken: ${message}`);
    expect(r.ok).toBe(severity === "warning");
  });

  test.each([
    ["Clusters: {}\n", "config does not define any clusters"],
    ["Other: 1\n", "config does not define any clusters"],
    [
      "Clusters:\n  aaaaa: {}\n  bbbbb: {}\n",
      "Clusters: multiple clusters configured, cannot choose (aaaaa, bbbbb)",
    ],
    ["Clusters: [a]\n", "Clusters: expected a map from cluster ID to cluster config"],
    ["- a\n", "config.yml: expected a map with a Clusters key at the top level"],
  ])("file shape %j", async (text, message) => {
    expect(errorsOf(await load(text))).toEqual([message]);
  });

  test("a bad cluster id is an error but the rest is still checked", async () => {
    const r = await load(
      yaml(`    Containers:\n      MaxRetryAttempts: x\n`).replace("zzzzz", "ZZ"),
    );
    expect(errorsOf(r)).toEqual([
      "Clusters.ZZ: cluster ID must be exactly 5 characters from a-z and 0-9",
      'Clusters.ZZ.Containers.MaxRetryAttempts: "x" is not a whole number',
    ]);
  });

  test("YAML syntax errors name the line and column, without a stack", async () => {
    const r = await load("Clusters:\n  zzzzz:\n    Containers: {\n  bad\n");
    const errors = errorsOf(r);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/^config\.yml: line \d+, column \d+: /);
    expect(errors.join("\n")).not.toMatch(/\n\s+at /);
  });

  test("a duplicate key is a syntax error with its position", async () => {
    const r = await load("Clusters:\n  zzzzz: {}\n  zzzzz: {}\n");
    expect(errorsOf(r)).toEqual(["config.yml: line 3, column 3: Map keys must be unique"]);
  });

  test("InstanceTypes as a list is rejected with Arvados's message", async () => {
    const r = await load(yaml(`    InstanceTypes:\n      - Name: a\n`));
    expect(errorsOf(r)).toEqual([
      "Clusters.zzzzz.InstanceTypes: InstanceTypes must be specified as a map, not an array, see https://doc.arvados.org/admin/config.html",
    ]);
  });

  test("GPU checks: DriverVersion must be X.Y, Stack must be cuda/rocm, VRAM is needed", async () => {
    const r = await load(
      yaml(`    InstanceTypes:
      g:
        GPU:
          Stack: opencl
          DriverVersion: latest
          DeviceCount: 1
`),
    );
    expect(errorsOf(r)).toEqual([
      'Clusters.zzzzz.InstanceTypes.g.GPU.Stack: unacceptable value "opencl", must be one of: "", "cuda", "rocm"',
      'Clusters.zzzzz.InstanceTypes.g.GPU.DriverVersion: InstanceType "g" has invalid GPU.DriverVersion "latest", expected format X.Y (not a number)',
    ]);
    expect(warningsOf(r)).toContain(
      "Clusters.zzzzz.InstanceTypes.g.GPU.VRAM: not set; a GPU type with VRAM 0 never satisfies a container that requests GPU memory",
    );
  });

  test("loopback with several instance types is an error", async () => {
    const r = await load(
      yaml(
        `    Containers:\n      CloudVMs:\n        Enable: true\n        Driver: loopback\n    InstanceTypes:\n      a: {}\n      b: {}\n`,
      ),
    );
    expect(errorsOf(r)).toEqual([
      "Clusters.zzzzz.InstanceTypes: cannot use multiple InstanceTypes with loopback driver",
    ]);
  });

  test("a missing controller URL is a warning", async () => {
    const r = await load(
      `Clusters:\n  zzzzz:\n    ManagementToken: ${goodToken}\n    SystemRootToken: ${goodToken}\n`,
    );
    expect(warningsOf(r)).toContain(
      "Clusters.zzzzz.Services.Controller.ExternalURL: not set; the dispatcher needs it to reach the API",
    );
  });

  test("unreadable files and stdin", async () => {
    const missing = await loadConfig({ path: "/nonexistent/config.yml" });
    expect(errorsOf(missing)[0]).toMatch(
      /^\/nonexistent\/config\.yml: cannot read the config file: ENOENT/,
    );
    const stdin = await loadConfig({ path: "-", readStdin: () => Promise.resolve(yaml()) });
    expect(loaded(stdin).source).toBe("<stdin>");
  });
});

describe("DispatchPrivateKey", () => {
  test("inline PEM is parsed and its text kept", async () => {
    const r = await load(
      yaml(`    Containers:\n      DispatchPrivateKey: |\n${rsaPem.replace(/^/gm, "        ")}\n`),
    );
    const key = loaded(r).dispatchKey;
    expect(key?.type).toBe("rsa");
    expect(key?.text.trim()).toBe(rsaPem);
    expect(key?.authorizedKey).toMatch(/^ssh-rsa AAAA/);
  });

  test("file:///absolute/path is read", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "config-key-"));
    writeFileSync(path.join(dir, "key.pem"), rsaPem);
    const r = await load(
      yaml(`    Containers:\n      DispatchPrivateKey: "file://${dir}/key.pem"\n`),
    );
    expect(loaded(r).dispatchKey?.type).toBe("rsa");
  });

  test.each([
    ["file://relative/key", '"file://relative/key" is not a file:///absolute/path URL'],
    ["file:///nonexistent/key", /: cannot read \/nonexistent\/key: ENOENT/],
    [
      "/etc/arvados/key",
      "not a PEM or OpenSSH private key (expected -----BEGIN ... PRIVATE KEY-----)",
    ],
    [
      "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----",
      'not a private key (found "-----BEGIN PUBLIC KEY-----")',
    ],
    [
      "-----BEGIN RSA PRIVATE KEY-----\nnotbase64\n-----END RSA PRIVATE KEY-----",
      /: unreadable private key: /,
    ],
  ])("%j is rejected", async (value, message) => {
    const r = await load(
      yaml(`    Containers:\n      DispatchPrivateKey: ${JSON.stringify(value)}\n`),
    );
    const prefix = "Clusters.zzzzz.Containers.DispatchPrivateKey: ";
    const errors = errorsOf(r);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.startsWith(prefix)).toBe(true);
    // A string is matched as a substring, so together with the prefix it pins the whole line.
    expect(errors[0]).toMatch(message);
    expect(errors[0]?.length).toBeGreaterThanOrEqual(
      prefix.length + (typeof message === "string" ? message.length : 1),
    );
  });
});

describe("preemptible twins", () => {
  test("PreemptiblePriceFactor adds X.preemptible for every non-preemptible type", async () => {
    const r = await load(
      yaml(`    Containers:
      PreemptiblePriceFactor: 0.5
    InstanceTypes:
      a:
        ProviderType: m5.large
        VCPUs: 2
        Price: 0.2
      b:
        Preemptible: true
        Price: 0.1
      c:
        Price: 1
      c.preemptible:
        Price: 0.3
        Preemptible: true
        ProviderType: c
`),
    );
    const types = loaded(r).cluster.InstanceTypes;
    expect(Object.keys(types).sort()).toEqual(["a", "a.preemptible", "b", "c", "c.preemptible"]);
    expect(types["a.preemptible"]).toEqual({
      ...types["a"],
      Name: "a.preemptible",
      Preemptible: true,
      Price: 0.1,
    });
    expect(types["c.preemptible"]?.Price).toBe(0.3);
    expect(warningsOf(r)).toContain(
      "Clusters.zzzzz.InstanceTypes[c.preemptible]: already exists, so not automatically adding a preemptible variant of c",
    );
  });
});

describe("examples", () => {
  async function example(name: string) {
    const r = await loadConfig({ path: path.join(examples, name) });
    return { config: loaded(r), warnings: warningsOf(r) };
  }

  test("ec2.yml: the install guide's minimal EC2 setup", async () => {
    const { config, warnings } = await example("ec2.yml");
    expect(warnings).toEqual([]);
    expect(config.clusterId).toBe("zzzzz");
    const vms = config.cluster.Containers.CloudVMs;
    expect(vms.Driver).toBe("ec2");
    expect(vms.ImageID).toBe("ami-01234567890abcdef");
    expect(vms.DriverParameters).toEqual({
      AccessKeyID: "AKIAEXAMPLEEXAMPLE01",
      SecretAccessKey: "exampleSecretAccessKeyDoNotUse0123456789",
      SecurityGroupIDs: ["sg-0123abcd"],
      SubnetID: "subnet-0123abcd",
      Region: "us-east-1",
      EBSVolumeType: "gp2",
      AdminUsername: "arvados",
    });
    expect(config.dispatchKey?.type).toBe("rsa");
    expect(config.dispatchKey?.text).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expect(Object.keys(config.cluster.Services["DispatchCloud"]?.InternalURLs ?? {})).toEqual([
      "http://localhost:9006/",
    ]);
    expect(config.cluster.InstanceTypes["x1md"]).toEqual({
      Name: "x1md",
      ProviderType: "x1.medium",
      VCPUs: 8,
      RAM: 64 * GiB,
      IncludedScratch: 64e9,
      AddedScratch: 0,
      Scratch: 64e9,
      Price: 0.62,
      Preemptible: false,
      GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
    });
    expect(config.cluster.InstanceTypes["x1lg"]).toMatchObject({
      ProviderType: "x1.large",
      VCPUs: 16,
      RAM: 128 * GiB,
      IncludedScratch: 128e9,
      Price: 1.23,
    });
  });

  test("azure-managed-image.yml", async () => {
    const { config, warnings } = await example("azure-managed-image.yml");
    expect(warnings).toEqual([]);
    const vms = config.cluster.Containers.CloudVMs;
    expect(vms.Driver).toBe("azure");
    expect(vms.ImageID).toBe("zzzzz-compute-v1");
    expect(vms.DriverParameters).toMatchObject({
      SubscriptionID: "00000000-1111-2222-3333-444444444444",
      ClientSecret: "exampleClientSecretDoNotUse",
      ResourceGroup: "zzzzz",
      ImageResourceGroup: "zzzzz-images",
      Network: "zzzzz",
      Subnet: "zzzzz-subnet-private",
      Location: "centralus",
    });
    expect(vms.DriverParameters).not.toHaveProperty("SharedImageGalleryName");
    expect(config.dispatchKey?.type).toBe("rsa");
    expect(config.dispatchKey?.text).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect(config.cluster.InstanceTypes["Standard_D4s_v3"]).toMatchObject({
      ProviderType: "Standard_D4s_v3",
      VCPUs: 4,
      RAM: 16 * GiB,
      Scratch: 32e9,
    });
  });

  test("azure-shared-gallery.yml", async () => {
    const { config, warnings } = await example("azure-shared-gallery.yml");
    expect(warnings).toEqual([]);
    const vms = config.cluster.Containers.CloudVMs;
    expect(vms.ImageID).toBe("zzzzz-compute");
    expect(vms.DriverParameters).toMatchObject({
      SharedImageGalleryName: "zzzzz_gallery",
      SharedImageGalleryImageVersion: "0.0.1",
    });
  });

  test("azure-vhd.yml", async () => {
    const { config, warnings } = await example("azure-vhd.yml");
    expect(warnings).toEqual([]);
    const vms = config.cluster.Containers.CloudVMs;
    expect(vms.ImageID).toMatch(/^https:\/\/zzzzzstorage\.blob\.core\.windows\.net\/.*\.vhd$/);
    expect(vms.DriverParameters).toMatchObject({
      StorageAccount: "zzzzzstorage",
      BlobContainer: "vhds",
    });
  });

  test("gpu-legacy-cuda.yml: CUDA is read as GPU with a deprecation warning", async () => {
    const { config, warnings } = await example("gpu-legacy-cuda.yml");
    const g4dn = config.cluster.InstanceTypes["g4dn"];
    expect(g4dn).toMatchObject({
      ProviderType: "g4dn.xlarge",
      VCPUs: 4,
      RAM: 16 * GiB,
      IncludedScratch: 125e9,
      Price: 0.56,
      GPU: { Stack: "cuda", DriverVersion: "11.4", HardwareTarget: "7.5", DeviceCount: 1, VRAM: 0 },
    });
    expect(config.cluster.InstanceTypes["g4dn.preemptible"]).toMatchObject({
      Preemptible: true,
      Price: 0.56 * 0.4,
      GPU: g4dn?.GPU,
    });
    expect(config.cluster.Containers.CloudVMs.DriverParameters["SecurityGroupIDs"]).toEqual({
      "sg-0123abcd": {},
    });
    expect(config.dispatchKey?.type).toBe("ed25519");
    expect(warnings).toEqual([
      'Clusters.zzzzz.InstanceTypes.g4dn.CUDA: deprecated section read as GPU: {Stack: cuda, DriverVersion: "11.4", HardwareTarget: "7.5", DeviceCount: 1}; write it as GPU (with VRAM) instead',
      "Clusters.zzzzz.InstanceTypes.g4dn.GPU.VRAM: not set; a GPU type with VRAM 0 never satisfies a container that requests GPU memory",
    ]);
  });

  test("CUDA next to GPU is ignored with a warning", async () => {
    const r = await load(
      yaml(
        `    InstanceTypes:\n      g:\n        GPU: {Stack: rocm, DriverVersion: "6.1", HardwareTarget: gfx1100, DeviceCount: 1, VRAM: 8GiB}\n        CUDA: {DriverVersion: "11.4", HardwareCapability: "7.5", DeviceCount: 1}\n`,
      ),
    );
    expect(loaded(r).cluster.InstanceTypes["g"]?.GPU).toEqual({
      Stack: "rocm",
      DriverVersion: "6.1",
      HardwareTarget: "gfx1100",
      DeviceCount: 1,
      VRAM: 8 * GiB,
    });
    expect(warningsOf(r)).toContain(
      "Clusters.zzzzz.InstanceTypes.g.CUDA: deprecated section ignored because GPU is also set; remove CUDA",
    );
  });
});

describe("numbers that overflow or make no sense", () => {
  const P = "Clusters.zzzzz";
  test.each([
    [
      "    Containers:\n      CloudVMs:\n        MaxInstances: 1e20\n",
      `${P}.Containers.CloudVMs.MaxInstances: 100000000000000000000 is too large (at most 9007199254740991)`,
    ],
    [
      "    Containers:\n      CloudVMs:\n        MaxInstances: 2.5\n",
      `${P}.Containers.CloudVMs.MaxInstances: 2.5 is not a whole number`,
    ],
    [
      "    Containers:\n      CloudVMs:\n        MaxCloudOpsPerSecond: -1\n",
      `${P}.Containers.CloudVMs.MaxCloudOpsPerSecond: -1 is negative; it must be 0 or more`,
    ],
    [
      "    Containers:\n      CloudVMs:\n        TimeoutIdle: -5s\n",
      `${P}.Containers.CloudVMs.TimeoutIdle: "-5s" is negative; it must be 0 or more`,
    ],
    [
      "    Containers:\n      CloudVMs:\n        SupervisorFraction: .inf\n",
      `${P}.Containers.CloudVMs.SupervisorFraction: Infinity is not a finite number`,
    ],
    [
      "    InstanceTypes:\n      x1:\n        VCPUs: -2\n",
      `${P}.InstanceTypes.x1.VCPUs: -2 is negative; it must be 0 or more`,
    ],
    [
      "    InstanceTypes:\n      x1:\n        Price: -0.5\n",
      `${P}.InstanceTypes.x1.Price: -0.5 is negative; it must be 0 or more`,
    ],
    [
      "    InstanceTypes:\n      x1:\n        RAM: -1\n",
      `${P}.InstanceTypes.x1.RAM: -1 is negative; it must be 0 or more`,
    ],
  ])("%j", async (extra, error) => {
    expect(errorsOf(await load(yaml(extra)))).toContain(error);
  });
});
