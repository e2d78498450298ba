import type { InstanceType } from "@dispatch-cloud/arvados-types";

/** Machine families whose vCPUs count against the regional `CPUS` quota rather than their own. */
const SHARED_CPU_QUOTA_FAMILIES: ReadonlySet<string> = new Set(["n1", "e2", "f1", "g1", "custom"]);

/**
 * The regional CPU quota a type draws on, which is what GCE runs out of per family:
 * `n2-standard-4` → `N2_CPUS`, `e2-medium` and `n1-…`/`custom-…` → `CPUS`, plus `-spot` for
 * preemptible types (Spot VMs may have a quota of their own, and must differ by contract).
 * A QUOTA_EXCEEDED for one of these holds back only the types in the same group.
 */
export function gceQuotaGroup(type: InstanceType): string {
  const family = type.ProviderType.toLowerCase().split("-")[0] ?? "";
  const group =
    family === ""
      ? ""
      : SHARED_CPU_QUOTA_FAMILIES.has(family)
        ? "CPUS"
        : `${family.toUpperCase()}_CPUS`;
  return type.Preemptible ? `${group}-spot` : group;
}
