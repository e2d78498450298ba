import { EC2ServiceException } from "@aws-sdk/client-ec2";
import type { InstanceType, Logger } from "@dispatch-cloud/arvados-types";

export interface LogEntry {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** A Logger that keeps what it is given, children included, for assertions. */
export function recordingLogger(entries: LogEntry[] = []): Logger & { entries: LogEntry[] } {
  const make = (base: Record<string, unknown>): Logger => ({
    debug: (fields, message) =>
      entries.push({ level: "debug", fields: { ...base, ...fields }, message }),
    info: (fields, message) =>
      entries.push({ level: "info", fields: { ...base, ...fields }, message }),
    warn: (fields, message) =>
      entries.push({ level: "warn", fields: { ...base, ...fields }, message }),
    error: (fields, message) =>
      entries.push({ level: "error", fields: { ...base, ...fields }, message }),
    child: (fields) => make({ ...base, ...fields }),
  });
  return Object.assign(make({}), { entries });
}

const GiB = 2 ** 30;

/** An instance type as the config package would produce it. */
export function instanceType(overrides: Partial<InstanceType> = {}): InstanceType {
  const base = {
    Name: "m5large",
    ProviderType: "m5.large",
    VCPUs: 2,
    RAM: 8 * GiB,
    IncludedScratch: 0,
    AddedScratch: 0,
    Price: 0.096,
    Preemptible: false,
    GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
    ...overrides,
  };
  return { ...base, Scratch: base.IncludedScratch + base.AddedScratch };
}

/** An error as the SDK produces it for an EC2 error response with this code and message. */
export function awsError(code: string, message: string): EC2ServiceException {
  return new EC2ServiceException({
    name: code,
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
    message,
  });
}
