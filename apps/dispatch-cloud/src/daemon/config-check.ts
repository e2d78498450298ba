import { checkConnection, connectionConfigured } from "@dispatch-cloud/cluster-lock";
import type { DriverRegistry } from "@dispatch-cloud/cloud-driver-api";
import type { LoadedConfig } from "@dispatch-cloud/config";

export interface DispatcherCheck {
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
}

/**
 * What only the dispatcher can check in a loaded config, without starting anything: the driver
 * exists, its DriverParameters decode and hold no key it never reads, and the lock's
 * PostgreSQL.Connection is usable. Every line starts with (or names) its key path.
 */
export function checkDispatcherConfig(
  loaded: LoadedConfig,
  drivers: DriverRegistry,
): DispatcherCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  const label = `Clusters.${loaded.clusterId}`;
  const vms = loaded.cluster.Containers.CloudVMs;
  if (!drivers.has(vms.Driver)) {
    errors.push(
      `${label}.Containers.CloudVMs.Driver: unsupported cloud driver ${JSON.stringify(vms.Driver)} (this dispatcher has ${drivers.names().join(", ")})`,
    );
  } else {
    const report = drivers.checkParameters(vms.Driver, vms.DriverParameters);
    errors.push(...report.errors.map((e) => `${label}.${e}`));
    // Arvados's drivers silently ignore keys they do not read; a typo there goes unnoticed.
    warnings.push(
      ...report.unknownKeys.map(
        (k) =>
          `deprecated or unknown config entry: ${label}.${k} (the ${vms.Driver} driver does not read it)`,
      ),
    );
  }
  const connection = loaded.cluster.PostgreSQL.Connection;
  if (connectionConfigured(connection)) {
    const c = checkConnection(connection, `${label}.PostgreSQL.Connection`);
    errors.push(...c.errors);
    warnings.push(...c.warnings);
  }
  return { errors, warnings };
}
