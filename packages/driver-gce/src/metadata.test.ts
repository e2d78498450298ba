import { describe, expect, it } from "vitest";
import {
  badTagKey,
  createMetadata,
  instanceSetLabelValue,
  mergeTagsIntoMetadata,
  newInstanceName,
  tagsFromMetadata,
} from "./metadata.js";
import { gceQuotaGroup } from "./quota-group.js";
import { sourceImagePath } from "./resource.js";
import { gceInstanceType, parseFilter } from "./testing/index.js";

describe("instance-set label", () => {
  it.each([
    // A token UUID and an MD5 hex, the two forms Arvados derives, are labels as they are.
    "zzzzz-gj3su-0123456789abcde",
    "0123456789abcdef0123456789abcdef",
  ])("%s is used as it is", (id) => {
    expect(instanceSetLabelValue(id)).toBe(id);
  });

  it("makes any other ID readable, with a hash so IDs stay apart", () => {
    // cloudtest's -instance-set-id can be anything.
    const a = instanceSetLabelValue("CloudTest@Host.Example");
    const b = instanceSetLabelValue("cloudtest@host.example");
    expect(a).toMatch(/^cloudtest-host-example-[0-9a-f]{12}$/);
    expect(b).toMatch(/^cloudtest-host-example-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
    expect(instanceSetLabelValue("CloudTest@Host.Example")).toBe(a);
  });

  it("keeps long IDs within 63 characters and apart", () => {
    const a = instanceSetLabelValue(`${"X".repeat(80)}a`);
    const b = instanceSetLabelValue(`${"X".repeat(80)}b`);
    expect(a.length).toBeLessThanOrEqual(63);
    expect(a).not.toBe(b);
  });
});

describe("instance names", () => {
  it("are compute-<set>-<15 random>, valid GCE names of at most 63 characters", () => {
    for (const set of ["zzzzz-gj3su-0123456789abcde", "0123456789abcdef0123456789abcdef", "a_b"]) {
      const name = newInstanceName(set);
      expect(name).toMatch(/^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/);
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name.startsWith(`compute-${set.replace(/_/g, "-").slice(0, 39)}-`)).toBe(true);
    }
    expect(newInstanceName("x")).not.toBe(newInstanceName("x"));
  });
});

describe("tags in metadata", () => {
  const tags = { ArvadosInstanceSetID: "zzzzz-gj3su-0123456789abcde", ArvadosIdleBehavior: "run" };

  it("writes tags, the startup script and the SSH key, and reads back only the tags", () => {
    const items = createMetadata(tags, "echo hi", "crunch", "ssh-ed25519 AAAA key\n");
    expect(items).toEqual([
      { key: "ArvadosInstanceSetID", value: "zzzzz-gj3su-0123456789abcde" },
      { key: "ArvadosIdleBehavior", value: "run" },
      { key: "startup-script", value: "#!/bin/sh\necho hi\n" },
      { key: "ssh-keys", value: "crunch:ssh-ed25519 AAAA key" },
    ]);
    expect(tagsFromMetadata([...items, { key: "enable-oslogin", value: "FALSE" }])).toEqual(tags);
    expect(tagsFromMetadata(undefined)).toEqual({});
  });

  it("merges new tags over old ones, keeps the rest, and never makes a reserved key a tag", () => {
    const items = createMetadata(tags, "true", "crunch", null);
    const merged = mergeTagsIntoMetadata(items, { ArvadosIdleBehavior: "hold", Added: "1" });
    expect(merged).toEqual([
      { key: "ArvadosInstanceSetID", value: "zzzzz-gj3su-0123456789abcde" },
      { key: "ArvadosIdleBehavior", value: "hold" },
      { key: "startup-script", value: "#!/bin/sh\ntrue\n" },
      { key: "Added", value: "1" },
    ]);
  });

  it.each([
    ["ArvadosInstanceSecret", undefined],
    ["Owner", undefined],
    ["cost_center-1", undefined],
    ["ssh-keys", 'tag key "ssh-keys" is a GCE metadata key with its own meaning'],
    [
      "cost center",
      'tag key "cost center" cannot be a GCE metadata key (letters, digits, - and _, at most 128)',
    ],
    ["k".repeat(129), expect.stringContaining("at most 128")],
  ])("tag key %s", (key, want) => {
    expect(badTagKey(key)).toEqual(want);
  });
});

describe("gceQuotaGroup", () => {
  it.each([
    ["e2-standard-4", false, "CPUS"],
    ["n1-highmem-8", false, "CPUS"],
    ["custom-2-4096", false, "CPUS"],
    ["n2-standard-4", false, "N2_CPUS"],
    ["n2d-highcpu-16", false, "N2D_CPUS"],
    ["c3-standard-8-lssd", false, "C3_CPUS"],
    ["a2-highgpu-1g", false, "A2_CPUS"],
    ["n2-standard-4", true, "N2_CPUS-spot"],
    ["e2-medium", true, "CPUS-spot"],
    ["", false, ""],
  ])("%s (preemptible %s) → %s", (providerType, preemptible, want) => {
    expect(
      gceQuotaGroup(gceInstanceType({ ProviderType: providerType, Preemptible: preemptible })),
    ).toBe(want);
  });
});

describe("sourceImagePath", () => {
  it.each([
    ["arvados-compute-1", "projects/p/global/images/arvados-compute-1"],
    ["family/arvados-compute", "projects/p/global/images/family/arvados-compute"],
    ["global/images/x", "projects/p/global/images/x"],
    [
      "projects/debian-cloud/global/images/family/debian-12",
      "projects/debian-cloud/global/images/family/debian-12",
    ],
    [
      "https://www.googleapis.com/compute/v1/projects/q/global/images/y",
      "projects/q/global/images/y",
    ],
  ])("%s", (image, want) => {
    expect(sourceImagePath(image, "p")).toBe(want);
  });
});

describe("the fake's list filter", () => {
  const vm = { name: "a", status: "RUNNING", labels: { arvados_instance_set: "s1", app: "x" } };
  it.each([
    ['labels.arvados_instance_set = "s1"', true],
    ["labels.arvados_instance_set = s2", false],
    ['(labels.app = "x") AND (status != TERMINATED)', true],
    ['(labels.app = "x") (name = "b")', false],
  ])("%s → %s", (filter, want) => {
    expect(parseFilter(filter)(vm)).toBe(want);
  });
  it.each([
    ["labels.app ~ x", "cannot parse filter at ~ x"],
    ["zone = a", "the fake cannot filter on zone"],
    ["(name = a", "unbalanced parentheses in filter"],
    ['name = "a" garbage', "filter term must be FIELD = VALUE or FIELD != VALUE"],
  ])("refuses %s", (filter, message) => {
    expect(() => parseFilter(filter)).toThrow(message);
  });
});
