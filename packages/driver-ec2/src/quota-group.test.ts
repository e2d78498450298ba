import { describe, expect, it } from "vitest";
import { DEFAULT_INSTANCE_TYPE_QUOTA_GROUPS, ec2QuotaGroup } from "./quota-group.js";

describe("ec2QuotaGroup", () => {
  const groups = { a: "standard", m: "standard", t: "standard", p5: "p5" };
  it.each([
    ["g1.large", false, "g"],
    ["x1.large", false, "x"],
    ["inf1.2xlarge", false, "inf"],
    ["a1.small", false, "standard"],
    ["m1.xlarge", true, "standard-spot"],
    ["p4.xlarge", true, "p-spot"],
    ["p5.xlarge", true, "p5-spot"],
    ["t3.2xlarge", false, "standard"],
    ["trn1.2xlarge", false, "trn"],
    ["imaginary9.5xlarge", false, "imaginary"],
    ["", false, ""],
    // Not in the Arvados table, but follow from the rule.
    ["", true, "-spot"],
    ["M5.Large", false, "standard"],
    ["metal", false, ""],
    ["5a.large", false, ""],
  ])("%s (preemptible %s) → %s", (ProviderType, Preemptible, want) => {
    expect(ec2QuotaGroup({ ProviderType, Preemptible }, groups)).toBe(want);
  });

  it("never looks up a prefix shorter than the family", () => {
    expect(ec2QuotaGroup({ ProviderType: "trn1.x", Preemptible: false }, { t: "standard" })).toBe(
      "trn",
    );
  });

  it("lets the longest configured prefix win", () => {
    const g = { p: "pee", p5: "p5", "p5e.": "p5e-dot" };
    expect(ec2QuotaGroup({ ProviderType: "p5e.48xlarge", Preemptible: false }, g)).toBe("p5e-dot");
    expect(ec2QuotaGroup({ ProviderType: "p5.48xlarge", Preemptible: false }, g)).toBe("p5");
  });

  it("maps the default families", () => {
    const d = DEFAULT_INSTANCE_TYPE_QUOTA_GROUPS;
    expect(ec2QuotaGroup({ ProviderType: "vt1.3xlarge", Preemptible: false }, d)).toBe("g");
    expect(ec2QuotaGroup({ ProviderType: "c5.large", Preemptible: true }, d)).toBe("standard-spot");
    expect(ec2QuotaGroup({ ProviderType: "g4dn.xlarge", Preemptible: false }, d)).toBe("g");
    expect(ec2QuotaGroup({ ProviderType: "x2gd.large", Preemptible: false }, d)).toBe("x");
  });
});
