import type { InstanceType } from "@dispatch-cloud/arvados-types";

/** The instance-family prefixes EC2 counts against shared vCPU quotas (Arvados's defaults). */
export const DEFAULT_INSTANCE_TYPE_QUOTA_GROUPS: Readonly<Record<string, string>> = {
  a: "standard",
  c: "standard",
  d: "standard",
  h: "standard",
  i: "standard",
  m: "standard",
  r: "standard",
  t: "standard",
  z: "standard",
  vt: "g",
  p5: "p5",
};

const lowercaseLetter = /^\p{Ll}$/u;

/**
 * The EC2 quota group of an instance type: the family (the letters before the first non-letter of
 * the lowercased ProviderType), replaced by the configured group of the longest configured prefix
 * that is at least as long as the family; `-spot` appended for preemptible types, since spot and
 * on-demand vCPUs have separate quotas.
 */
export function ec2QuotaGroup(
  type: Pick<InstanceType, "ProviderType" | "Preemptible">,
  groups: Readonly<Record<string, string>>,
): string {
  const pt = type.ProviderType.toLowerCase();
  let group = "";
  // Starts only once the family has ended: shorter prefixes (`t` for `trn1`) are never looked up.
  let inFamilyTail = false;
  for (let i = 0; i < pt.length; i++) {
    if (!inFamilyTail) {
      if (lowercaseLetter.test(pt[i]!)) continue;
      // A type that starts with a non-letter has no family.
      if (i === 0) break;
      group = pt.slice(0, i);
      inFamilyTail = true;
    }
    const configured = groups[pt.slice(0, i)];
    if (configured !== undefined && Object.hasOwn(groups, pt.slice(0, i))) group = configured;
  }
  return type.Preemptible ? `${group}-spot` : group;
}
