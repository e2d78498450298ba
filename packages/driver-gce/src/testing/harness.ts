import { instanceSetId, type InstanceType, type Logger } from "@dispatch-cloud/arvados-types";
import type { CreateRequest } from "@dispatch-cloud/cloud-driver-api";
import { testInstanceType } from "@dispatch-cloud/cloud-driver-api/testing";
import type { Registry } from "prom-client";
import {
  createGceInstanceSet,
  type GceDriverOptions,
  type GceInstanceSet,
} from "../instance-set.js";
import { FakeGce, type FakeGceOptions } from "./fake-gce.js";

/** A GCE instance type for tests (`e2-standard-2`), with overrides. */
export function gceInstanceType(overrides: Partial<InstanceType> = {}): InstanceType {
  return testInstanceType({
    Name: "e2s2",
    ProviderType: "e2-standard-2",
    RAM: 8 * 2 ** 30,
    Price: 0.067,
    ...overrides,
  });
}

export interface GceHarness {
  readonly fake: FakeGce;
  readonly set: GceInstanceSet;
  /** DriverParameters pointing at the fake, with a key it trusts. */
  readonly parameters: Record<string, unknown>;
  stop(): Promise<void>;
}

/**
 * A fake GCE server and an instance set on it (zone `us-central1-a` unless the parameters say
 * otherwise; operations polled without pause).
 */
export async function startGceHarness(o: {
  parameters?: Record<string, unknown>;
  fakeOptions?: FakeGceOptions;
  driverOptions?: GceDriverOptions;
  instanceSetId?: string;
  resourceTags?: Record<string, string>;
  logger: Logger;
  registry?: Registry | null;
}): Promise<GceHarness> {
  const fake = await FakeGce.start(o.fakeOptions);
  const key = fake.newServiceAccountKey();
  const parameters = {
    Credentials: JSON.stringify(key),
    Zone: "us-central1-a",
    Endpoint: fake.endpoint,
    ...o.parameters,
  };
  try {
    const set = await createGceInstanceSet(
      {
        parameters,
        instanceSetId: instanceSetId(o.instanceSetId ?? "zzzzz-gj3su-0123456789abcde"),
        sharedResourceTags: o.resourceTags ?? {},
        logger: o.logger,
        registry: o.registry ?? null,
      },
      { operationPollIntervalMs: 0, ...o.driverOptions },
    );
    return {
      fake,
      set,
      parameters,
      stop: async () => {
        await set.stop();
        await fake.close();
      },
    };
  } catch (err) {
    await fake.close();
    throw err;
  }
}

/** A create request with the dispatcher's tags for `setId`. */
export function gceCreateRequest(
  setId: string,
  overrides: Partial<CreateRequest> = {},
): CreateRequest {
  return {
    instanceType: gceInstanceType(),
    imageId: "arvados-compute-1",
    tags: {
      ArvadosInstanceSetID: setId,
      ArvadosInstanceType: "e2s2",
      ArvadosIdleBehavior: "run",
      ArvadosInstanceSecret: "0123456789abcdef0123456789abcdef01234567",
    },
    initCommand: 'umask 0177 && echo -n "secret" >/var/run/arvados-instance-secret\n',
    publicKey:
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyExampleKeyExampleKeyExampleKeyEx test",
    ...overrides,
  };
}
