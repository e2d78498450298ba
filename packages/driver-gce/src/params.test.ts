import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DriverParametersError } from "@dispatch-cloud/cloud-driver-api";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_SCOPES,
  GCE_PARAMETER_KEYS,
  endpointParts,
  parseGceParameters,
  resolveGceConfig,
} from "./params.js";
import { newServiceAccountKey } from "./testing/index.js";

const key = newServiceAccountKey("arvados-prod");
const P = "Containers.CloudVMs.DriverParameters";

function problems(params: Record<string, unknown>): readonly string[] {
  try {
    parseGceParameters(params);
  } catch (err) {
    if (err instanceof DriverParametersError) return err.problems;
    throw err;
  }
  return [];
}

describe("parseGceParameters", () => {
  it("applies defaults and takes Project from the key", () => {
    const c = parseGceParameters({ Credentials: JSON.stringify(key), Zone: "us-central1-a" });
    expect(c).toEqual({
      project: "arvados-prod",
      zones: ["us-central1-a"],
      network: "",
      subnetwork: "",
      networkTags: [],
      credentials: {
        kind: "inline",
        key: expect.objectContaining({ client_email: key.client_email }),
      },
      serviceAccount: "",
      serviceAccountScopes: [],
      adminUsername: "crunch",
      diskType: "pd-balanced",
      minBootDiskSizeGb: 0,
      scratchDiskType: "pd-balanced",
      labels: {},
      endpoint: "",
    });
  });

  it("reads every key, case-insensitively, ignoring other drivers' keys", () => {
    const c = parseGceParameters({
      project: "p1",
      zones: ["us-east1-b", "us-east1-c"],
      NETWORK: "arvados",
      Subnetwork: "projects/host/regions/us-east1/subnetworks/compute",
      NetworkTags: ["arvados-compute"],
      Credentials: key,
      ServiceAccount: "vm@p1.iam.gserviceaccount.com",
      AdminUsername: "arvados",
      DiskType: "pd-ssd",
      MinBootDiskSizeGB: 40,
      ScratchDiskType: "local-ssd",
      Labels: { cluster: "zzzzz", "cost-center": "genomics_1" },
      Endpoint: "http://127.0.0.1:8080",
      // The EC2 and Azure defaults Arvados merges into every DriverParameters.
      EBSVolumeType: "gp2",
      Location: "centralus",
    });
    expect(c).toMatchObject({
      project: "p1",
      zones: ["us-east1-b", "us-east1-c"],
      network: "arvados",
      subnetwork: "projects/host/regions/us-east1/subnetworks/compute",
      networkTags: ["arvados-compute"],
      serviceAccount: "vm@p1.iam.gserviceaccount.com",
      serviceAccountScopes: DEFAULT_SCOPES,
      adminUsername: "arvados",
      diskType: "pd-ssd",
      minBootDiskSizeGb: 40,
      scratchDiskType: "local-ssd",
      labels: { cluster: "zzzzz", "cost-center": "genomics_1" },
      endpoint: "http://127.0.0.1:8080",
    });
  });

  it.each<[string, Record<string, unknown>, string[]]>([
    [
      "no zone, no project",
      {},
      [
        `${P}.Project: is required (or give Credentials with a project_id)`,
        `${P}.Zone: is required (or Zones, a list of zones to fail over across)`,
      ],
    ],
    [
      "Zone and Zones",
      { Project: "p", Zone: "us-east1-b", Zones: ["us-east1-c"] },
      [`${P}.Zones: give Zone or Zones, not both`],
    ],
    [
      "a bad zone",
      { Project: "p", Zones: ["us-east1-b", "useast1", "us-east1-b"] },
      [
        `${P}.Zones[1]: must be a zone name such as us-central1-a, not "useast1"`,
        `${P}.Zones[2]: repeats zone us-east1-b`,
      ],
    ],
    [
      "bad labels",
      {
        Project: "p",
        Zone: "us-east1-b",
        Labels: { Team: "x", ok: "Not-Lower", arvados_instance_set: "x" },
      },
      [
        `${P}.Labels.Team: label keys must be lowercase letters, digits, _ and - (at most 63, starting with a letter)`,
        `${P}.Labels.ok: label values must be lowercase letters, digits, _ and - (at most 63), not "Not-Lower"`,
        `${P}.Labels.arvados_instance_set: is the driver's own label for the instance set`,
      ],
    ],
    [
      "a bad network tag",
      { Project: "p", Zone: "us-east1-b", NetworkTags: ["Allow SSH"] },
      [
        `${P}.NetworkTags[0]: must be lowercase letters, digits and dashes (at most 63, starting with a letter), not "Allow SSH"`,
      ],
    ],
    [
      "scopes without an account",
      { Project: "p", Zone: "us-east1-b", ServiceAccountScopes: ["x"] },
      [`${P}.ServiceAccountScopes: needs ServiceAccount: scopes belong to the VMs' account`],
    ],
    [
      "a bad account",
      { Project: "p", Zone: "us-east1-b", ServiceAccount: "compute" },
      [`${P}.ServiceAccount: must be a service account email or "default"`],
    ],
    [
      "a local SSD boot disk",
      { Project: "p", Zone: "us-east1-b", DiskType: "local-ssd" },
      [`${P}.DiskType: a boot disk cannot be a local SSD`],
    ],
    [
      "a bad disk size",
      { Project: "p", Zone: "us-east1-b", MinBootDiskSizeGB: "20GB" },
      [`${P}.MinBootDiskSizeGB: must be an integer, not "20GB"`],
    ],
    [
      "a bad endpoint",
      { Project: "p", Zone: "us-east1-b", Endpoint: "127.0.0.1:8080" },
      [`${P}.Endpoint: must be an http:// or https:// URL, not "127.0.0.1:8080"`],
    ],
    [
      "both credentials",
      { Project: "p", Zone: "us-east1-b", Credentials: key, CredentialsFile: "/k.json" },
      [`${P}.Credentials: give Credentials or CredentialsFile, not both`],
    ],
  ])("reports %s with key paths", (_name, params, want) => {
    expect(problems(params)).toEqual(want);
  });

  it("never puts the key in a problem", () => {
    const secret = key.private_key;
    const cases: Record<string, unknown>[] = [
      { Credentials: JSON.stringify(key).slice(0, -1) },
      { Credentials: { ...key, type: "authorized_user" } },
      { Credentials: { ...key, private_key: secret.replace(/[A-Za-z]/g, "x") } },
      { Credentials: { ...key, client_email: undefined } },
      { CredentialsFile: key },
    ];
    const got = cases.map((c) => problems({ Project: "p", Zone: "us-east1-b", ...c }));
    expect(got).toEqual([
      [`${P}.Credentials: is not a JSON service account key`],
      [`${P}.Credentials: must be a key of type "service_account", not "authorized_user"`],
      [`${P}.Credentials: has a private_key that is not a PEM private key`],
      [`${P}.Credentials: has no client_email`],
      [`${P}.CredentialsFile: must be the path of a JSON key file`],
    ]);
    for (const p of got.flat()) expect(p).not.toContain("PRIVATE KEY");
  });

  it("lists exactly the keys it reads", () => {
    const read = new Set<string>();
    const empty: Record<string, unknown> = {};
    const params = new Proxy(empty, {
      getOwnPropertyDescriptor(obj, prop) {
        if (typeof prop === "string") read.add(prop);
        return Reflect.getOwnPropertyDescriptor(obj, prop);
      },
    });
    problems(params);
    expect([...read].sort()).toEqual([...GCE_PARAMETER_KEYS].sort());
  });
});

describe("resolveGceConfig", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "gce-params-"));

  it("reads a CredentialsFile and takes Project from it", async () => {
    const file = path.join(dir, "key.json");
    writeFileSync(file, JSON.stringify(key));
    const c = await resolveGceConfig(
      parseGceParameters({ CredentialsFile: file, Zone: "us-east1-b" }),
    );
    expect(c.project).toBe("arvados-prod");
    expect(c.credentials).toMatchObject({
      kind: "inline",
      key: { client_email: key.client_email },
    });
  });

  it("names the file when it cannot be read or is not a key", async () => {
    const missing = path.join(dir, "missing.json");
    const notKey = path.join(dir, "not-key.json");
    writeFileSync(notKey, "[]");
    for (const [file, want] of [
      [missing, `${P}.CredentialsFile: cannot read ${missing}: ENOENT`],
      [notKey, `${P}.CredentialsFile: must be a service account key (a JSON object)`],
    ] as const) {
      const err = await resolveGceConfig(
        parseGceParameters({ CredentialsFile: file, Project: "p", Zone: "us-east1-b" }),
      ).catch((e: unknown) => e);
      expect((err as DriverParametersError).problems).toEqual([want]);
    }
  });
});

describe("endpointParts", () => {
  it.each([
    ["http://127.0.0.1:8080", { host: "127.0.0.1", port: 8080, protocol: "http" }],
    ["https://compute.example.com", { host: "compute.example.com", port: 443, protocol: "https" }],
    ["https://compute.example.com/compute/v1", undefined],
    ["ftp://x", undefined],
  ])("%s", (url, want) => {
    expect(endpointParts(url)).toEqual(want);
  });
});
