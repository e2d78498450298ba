import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import {
  dumpConfig,
  encodeCluster,
  loadConfig,
  redactConfig,
  REDACTED,
  type LoadedConfig,
} from "./index.js";

const examples = path.resolve(import.meta.dirname, "../../../examples");
const pemLines = readFileSync(path.join(examples, "ec2.yml"), "utf8")
  .split("\n")
  .filter((l) => /^ {8}(-----|[A-Za-z0-9+/=]+$)/.test(l));

const secrets = {
  management: "Mgmt0Secret0Token0aaaaaaaaaaaaaaaaaaaaaa",
  root: "Root0Secret0Token0bbbbbbbbbbbbbbbbbbbbbbb",
  awsKeyId: "AKIAEXAMPLESECRET999",
  awsSecret: "awsSecretValue/with+chars",
  azureSecret: "azureClientSecretValue",
  blobSigning: "blobSigningKeyValue",
  pgPassword: "postgresPasswordValue",
  anonToken: "anonymousUserTokenValue",
};

const text = `Clusters:
  zzzzz:
    ManagementToken: ${secrets.management}
    SystemRootToken: ${secrets.root}
    Services:
      Controller:
        ExternalURL: https://zzzzz.example
    PostgreSQL:
      Connection:
        host: localhost
        password: ${secrets.pgPassword}
    Collections:
      BlobSigningKey: ${secrets.blobSigning}
    Users:
      AnonymousUserToken: ${secrets.anonToken}
    Containers:
      DispatchPrivateKey: |
${pemLines.join("\n")}
      CloudVMs:
        TimeoutIdle: 90s
        DriverParameters:
          AccessKeyID: ${secrets.awsKeyId}
          SecretAccessKey: ${secrets.awsSecret}
          ClientSecret: ${secrets.azureSecret}
          Region: us-east-1
    InstanceTypes:
      x1md:
        ProviderType: x1.medium
        RAM: 64GiB
`;

async function load(t: string): Promise<LoadedConfig> {
  const r = await loadConfig({ text: t });
  if (!r.ok) throw new Error(r.errors.map((e) => e.text).join("\n"));
  return r.config;
}

describe("redaction", () => {
  test("no secret survives a dump", async () => {
    const config = await load(text);
    const dump = dumpConfig(config);
    for (const [name, value] of Object.entries(secrets)) {
      expect({ name, leaked: dump.includes(value) }).toEqual({ name, leaked: false });
    }
    // No line of the private key either (the PEM body is the secret, not just its header).
    for (const line of pemLines.map((l) => l.trim()).filter((l) => !l.startsWith("-----"))) {
      expect(dump).not.toContain(line);
    }
    const dumped = parse(dump) as { Clusters: { zzzzz: Record<string, any> } };
    const c = dumped.Clusters.zzzzz;
    expect(c["ManagementToken"]).toBe(REDACTED);
    expect(c["SystemRootToken"]).toBe(REDACTED);
    expect(c["Containers"].DispatchPrivateKey).toBe(REDACTED);
    expect(c["Containers"].CloudVMs.DriverParameters).toEqual({
      AccessKeyID: REDACTED,
      SecretAccessKey: REDACTED,
      ClientSecret: REDACTED,
      Region: "us-east-1",
    });
    expect(c["PostgreSQL"].Connection).toEqual({ host: "localhost", password: REDACTED });
  });

  test("redactConfig leaves the loaded config untouched and empty secrets visible as empty", async () => {
    const config = await load(text);
    const red = redactConfig(config.cluster);
    expect(config.cluster.ManagementToken).toBe(secrets.management);
    expect(red.ManagementToken).toBe(REDACTED);
    const empty = await load("Clusters:\n  zzzzz: {}\n");
    expect(redactConfig(empty.cluster).SystemRootToken).toBe("");
  });

  test("a dump shows defaults, Go-style durations and byte counts, and the instance types as written", async () => {
    const dumped = parse(dumpConfig(await load(text))) as {
      Clusters: { zzzzz: Record<string, any> };
    };
    const c = dumped.Clusters.zzzzz;
    expect(c["Containers"].CloudVMs.TimeoutIdle).toBe("1m30s");
    expect(c["Containers"].CloudVMs.TimeoutBooting).toBe("10m");
    expect(c["Containers"].CloudVMs.MaxInstances).toBe(64);
    expect(c["Containers"].ReserveExtraRAM).toBe(550 * 2 ** 20);
    expect(c["Containers"].SupportedDockerImageFormats).toEqual({ v2: {} });
    expect(c["InstanceTypes"].x1md).not.toHaveProperty("Name");
    expect(c["InstanceTypes"].x1md).not.toHaveProperty("Scratch");
    expect(c["InstanceTypes"].x1md.RAM).toBe(64 * 2 ** 30);
  });

  test("an unredacted encoding loads back to the same config without warnings", async () => {
    const config = await load(text);
    const again = await loadConfig({
      text: JSON.stringify({ Clusters: { zzzzz: encodeCluster(config.cluster) } }),
    });
    expect(again.ok).toBe(true);
    if (!again.ok) return;
    expect(again.warnings.map((w) => w.text)).toEqual([]);
    expect(again.config.cluster).toEqual(config.cluster);
  });
});
