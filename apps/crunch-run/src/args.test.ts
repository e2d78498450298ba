import { describe, expect, it } from "vitest";
import { UsageError, parseArgs } from "./args.js";

describe("parseArgs", () => {
  it("accepts -flag and --flag alike, as the dispatcher and Go's flag package write them", () => {
    const a = parseArgs([
      "--detach",
      "--stdin-config",
      "--runtime-engine=process",
      "zzzzz-dz642-000000000000001",
    ]);
    const b = parseArgs([
      "-detach",
      "-stdin-config",
      "-runtime-engine",
      "process",
      "zzzzz-dz642-000000000000001",
    ]);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ detach: true, stdinConfig: true, runtimeEngine: "process" });
    expect(a.containerUuid).toBe("zzzzz-dz642-000000000000001");
  });

  it("defaults the runtime engine to docker", () => {
    expect(parseArgs(["zzzzz-dz642-000000000000001"]).runtimeEngine).toBe("docker");
  });

  it("parses --kill with its signal number", () => {
    expect(parseArgs(["--kill", "15", "zzzzz-dz642-000000000000001"]).kill).toBe(15);
    expect(() => parseArgs(["--kill", "TERM", "x"])).toThrow('invalid value "TERM" for flag -kill');
  });

  it("needs a container UUID except with --list", () => {
    expect(parseArgs(["--list", "--stdin-prices"])).toMatchObject({
      list: true,
      stdinPrices: true,
    });
    expect(() => parseArgs(["--detach"])).toThrow(
      new UsageError("missing required argument: container-uuid (try -help)"),
    );
  });

  it("accepts every flag of Arvados's crunch-run, honouring some and naming the rest", () => {
    const a = parseArgs([
      "--detach",
      "--stdin-config",
      "--runtime-engine=docker",
      "-crunchstat-interval=5s",
      "-cgroup-root",
      "/sys/fs/cgroup",
      "-cgroup-parent=docker",
      "-cgroup-parent-subsystem=memory",
      "-ca-certs=/etc/arvados/ca.pem",
      "-config",
      "/etc/arvados/config.yml",
      "-sleep=1.5s",
      "-enable-memory-limit=false",
      "-container-enable-networking=always",
      "-container-network-mode=host",
      "-memprofile=/tmp/mem",
      "-broken-node-hook=/usr/local/bin/killme",
      "-check-containerd=60s",
      "zzzzz-dz642-000000000000001",
    ]);
    expect(a).toMatchObject({
      caCerts: "/etc/arvados/ca.pem",
      sleepMs: 1500,
      enableMemoryLimit: false,
      enableNetworking: "always",
      networkMode: "host",
      brokenNodeHook: "/usr/local/bin/killme",
      containerUuid: "zzzzz-dz642-000000000000001",
    });
    expect(a.ignored.map((f) => f.replace(/ \(.*/, ""))).toEqual([
      "-crunchstat-interval=5s",
      "-cgroup-root=/sys/fs/cgroup",
      "-cgroup-parent=docker",
      "-cgroup-parent-subsystem=memory",
      "-config=/etc/arvados/config.yml",
      "-memprofile=/tmp/mem",
      "-check-containerd=60s",
    ]);
  });

  it("takes Go's spellings of booleans, durations and a negative --kill", () => {
    expect(parseArgs(["-list=T", "-enable-memory-limit=0"])).toMatchObject({
      list: true,
      enableMemoryLimit: false,
      ignored: [],
    });
    expect(parseArgs(["--kill=-1", "x"]).kill).toBeNull();
    expect(parseArgs(["--sleep=1m30s", "x"]).sleepMs).toBe(90_000);
    expect(() => parseArgs(["--sleep=90", "x"])).toThrow(
      'invalid value "90" for flag -sleep: parse error (a duration like 10s or 1m30s)',
    );
    expect(() => parseArgs(["--list=maybe"])).toThrow('invalid value "maybe" for flag -list');
  });

  it("rejects unknown flags by name", () => {
    expect(() => parseArgs(["--frobnicate", "x"])).toThrow(
      "flag provided but not defined: -frobnicate",
    );
  });
});
