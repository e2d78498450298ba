import { createHmac } from "node:crypto";
import { goJson, goTime, type InstanceType } from "@dispatch-cloud/arvados-types";
import { describe, expect, it } from "vitest";
import {
  detachCommand,
  detachStdin,
  gatewayAddress,
  installCommand,
  instanceTypeDocument as instanceTypeJson,
  killCommand,
  listCommand,
  md5sumCommand,
  md5sumExpected,
  parseListOutput,
  pricesJson,
  shellQuote,
} from "./commands.js";

const t: InstanceType = {
  Name: "m5large.preemptible",
  ProviderType: "m5.large",
  VCPUs: 2,
  RAM: 8589934592,
  IncludedScratch: 0,
  AddedScratch: 53687091200,
  Scratch: 53687091200,
  Price: 0.048,
  Preemptible: true,
  GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
};

describe("crunch-run command lines", () => {
  it("quotes each --detach argument and the uuid, with ' as '\\''", () => {
    expect(
      detachCommand(
        "crunch-run",
        ["--runtime-engine=stub", "--foo", "--extra='args'"],
        "zzzzz-dz642-000000000000001",
        "root",
      ),
    ).toBe(
      `crunch-run --detach --stdin-config '--runtime-engine=stub' '--foo' '--extra='\\''args'\\''' 'zzzzz-dz642-000000000000001'`,
    );
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });

  it("prefixes sudo for non-root users, but not md5sum", () => {
    expect(detachCommand("/tmp/x/crunch-run~ab", [], "u", "crunch")).toBe(
      "sudo /tmp/x/crunch-run~ab --detach --stdin-config 'u'",
    );
    expect(listCommand("crunch-run", false, "root")).toBe("crunch-run --list");
    expect(listCommand("crunch-run", true, "admin")).toBe("sudo crunch-run --list --stdin-prices");
    expect(killCommand("crunch-run", 15, "zzzzz-dz642-1", "admin")).toBe(
      "sudo crunch-run --kill 15 zzzzz-dz642-1",
    );
    expect(md5sumCommand("/tmp/arvados-crunch-run/crunch-run~abc")).toBe(
      "md5sum /tmp/arvados-crunch-run/crunch-run~abc",
    );
    expect(md5sumExpected("abc", "/d/crunch-run~abc")).toBe("abc  /d/crunch-run~abc\n");
  });

  it("writes the install script exactly, wrapped in sudo sh -c for non-root users", () => {
    const cmd = "/tmp/arvados-crunch-run/crunch-run~0123";
    const script =
      'set -e; dstdir="/tmp/arvados-crunch-run/"; dstfile="/tmp/arvados-crunch-run/crunch-run~0123"; ' +
      'mkdir -p "$dstdir"; touch "$dstfile"; chmod 0755 "$dstdir" "$dstfile"; cat >"$dstfile"';
    expect(installCommand(cmd, "root")).toBe(script);
    expect(installCommand(cmd, "crunch")).toBe(`sudo sh -c '${script}'`);
    expect(installCommand("/it's/crunch-run~1", "crunch")).toContain(`dstdir="/it'\\''s/"`);
  });
});

describe("--list output", () => {
  it("reads running, stale and broken lines, ignoring other clusters", () => {
    const out = [
      "zzzzz-dz642-000000000000001",
      "broken",
      "zzzzz-dz642-000000000000002 stale",
      "yyyyy-dz642-000000000000003",
      "zzzzz-dz642-000000000000004 weird",
      "",
    ].join("\n");
    expect(parseListOutput(out, "zzzzz")).toEqual({
      running: ["zzzzz-dz642-000000000000001"],
      broken: true,
      stale: ["zzzzz-dz642-000000000000002"],
    });
    expect(parseListOutput("", "zzzzz")).toEqual({ running: [], broken: false, stale: [] });
  });
});

describe("--stdin-config document", () => {
  it("has Go's field order, sorted Env, node.json with 4-space indent, and a trailing newline", () => {
    const text = detachStdin({
      uuid: "zzzzz-dz642-000000000000001",
      instanceType: t,
      address: "10.1.2.3:2222",
      apiHost: "zzzzz.example.com",
      apiInsecure: true,
      systemRootToken: "xyzzy",
      localKeepBlobBuffersPerVcpu: 1,
      driver: "ec2",
      clusterConfigJson: { Containers: { CloudVMs: { TimeoutIdle: "1m" } } },
    });
    expect(text.endsWith("}\n")).toBe(true);
    const doc = JSON.parse(text) as {
      Env: Record<string, string>;
      KeepBuffers: number;
      EC2SpotCheck: boolean;
      Cluster: unknown;
    };
    expect(Object.keys(doc)).toEqual(["Env", "KeepBuffers", "EC2SpotCheck", "Cluster"]);
    expect(Object.keys(doc.Env)).toEqual([
      "ARVADOS_API_HOST",
      "ARVADOS_API_HOST_INSECURE",
      "ARVADOS_API_TOKEN",
      "GatewayAddress",
      "GatewayAuthSecret",
      "InstanceType",
    ]);
    expect(doc.Env["ARVADOS_API_HOST_INSECURE"]).toBe("1");
    expect(doc.Env["ARVADOS_API_TOKEN"]).toBe("xyzzy");
    expect(doc.Env["GatewayAddress"]).toBe("10.1.2.3:0");
    expect(doc.Env["GatewayAuthSecret"]).toBe(
      createHmac("sha256", "xyzzy").update("zzzzz-dz642-000000000000001").digest("hex"),
    );
    expect(doc.KeepBuffers).toBe(2);
    expect(doc.EC2SpotCheck).toBe(true);
    expect(doc.Cluster).toEqual({ Containers: { CloudVMs: { TimeoutIdle: "1m" } } });
    expect(doc.Env["InstanceType"]).toBe(
      `{
    "ProviderType": "m5.large",
    "VCPUs": 2,
    "RAM": 8589934592,
    "IncludedScratch": 0,
    "AddedScratch": 53687091200,
    "Price": 0.048,
    "Preemptible": true,
    "GPU": {
        "Stack": "",
        "DriverVersion": "",
        "HardwareTarget": "",
        "DeviceCount": 0,
        "VRAM": 0
    }
}
`,
    );
    expect(instanceTypeJson(t)).toBe(doc.Env["InstanceType"]);
  });

  it("sends no Cluster and no buffers when LocalKeepBlobBuffersPerVCPU is 0, no insecure flag", () => {
    const doc = JSON.parse(
      detachStdin({
        uuid: "u",
        instanceType: { ...t, Preemptible: false },
        address: "host",
        apiHost: "h",
        apiInsecure: false,
        systemRootToken: "s",
        localKeepBlobBuffersPerVcpu: 0,
        driver: "ec2",
        clusterConfigJson: { x: 1 },
      }),
    ) as {
      Env: Record<string, string>;
      KeepBuffers: number;
      EC2SpotCheck: boolean;
      Cluster: unknown;
    };
    expect(doc.Cluster).toBeNull();
    expect(doc.KeepBuffers).toBe(0);
    expect(doc.EC2SpotCheck).toBe(false);
    expect(doc.Env["ARVADOS_API_HOST_INSECURE"]).toBeUndefined();
    expect(doc.Env["GatewayAddress"]).toBe("host:0");
  });

  it("escapes HTML characters as Go does and formats times as Go does", () => {
    expect(goJson({ a: "<&>" })).toBe('{"a":"\\u003c\\u0026\\u003e"}');
    expect(goTime(Date.parse("2026-01-02T03:04:05.000Z"))).toBe("2026-01-02T03:04:05Z");
    expect(goTime(Date.parse("2026-01-02T03:04:05.120Z"))).toBe("2026-01-02T03:04:05.12Z");
    expect(pricesJson([{ StartTime: new Date("2026-01-02T03:04:05Z"), Price: 0.5 }])).toBe(
      '[{"StartTime":"2026-01-02T03:04:05Z","Price":0.5}]',
    );
    expect(gatewayAddress("[::1]:22")).toBe("[::1]:0");
    expect(gatewayAddress("::1")).toBe("[::1]:0");
  });
});
