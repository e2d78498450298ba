import {
  instanceId,
  type HostKeyVerdict,
  type InstanceId,
  type InstanceType,
} from "@dispatch-cloud/arvados-types";
import type {
  CreateRequest,
  Instance,
  InstancePrice,
  InstanceSet,
  InstanceTags,
} from "../types.js";

/** One call a FakeInstanceSet received. */
export interface FakeCall {
  readonly op: "create" | "list" | "destroy" | "setTags";
  readonly instanceId?: InstanceId;
  readonly tags?: InstanceTags;
}

/**
 * A minimal in-memory InstanceSet for tests of code that wraps or consumes one (decorators,
 * the pool's bookkeeping) when no SSH is needed. Ids are `fake-1`, `fake-2`, …; `failNext`
 * queues errors; `listAll` ignores the filter like Azure and loopback do.
 */
export class FakeInstanceSet implements InstanceSet {
  readonly calls: FakeCall[] = [];
  readonly vms = new Map<string, { providerType: string; tags: InstanceTags }>();
  readonly #errors: Record<FakeCall["op"], Error[]> = {
    create: [],
    list: [],
    destroy: [],
    setTags: [],
  };
  #next = 1;
  stopped = false;

  failNext(op: FakeCall["op"], err: Error): void {
    this.#errors[op].push(err);
  }

  #check(op: FakeCall["op"], signal?: AbortSignal): void {
    if (signal?.aborted) throw new Error("aborted");
    const e = this.#errors[op].shift();
    if (e !== undefined) throw e;
  }

  create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    this.calls.push({ op: "create", tags: { ...request.tags } });
    try {
      this.#check("create", signal);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = `fake-${this.#next++}`;
    this.vms.set(id, {
      providerType: request.instanceType.ProviderType,
      tags: { ...request.tags },
    });
    return Promise.resolve(this.#snapshot(id));
  }

  instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    this.calls.push({ op: "list", tags: { ...filter } });
    try {
      this.#check("list", signal);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve([...this.vms.keys()].map((id) => this.#snapshot(id)));
  }

  instanceQuotaGroup(type: InstanceType): string {
    return type.Preemptible ? `${type.ProviderType}-spot` : type.ProviderType;
  }

  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  #snapshot(id: string): Instance {
    const vm = this.vms.get(id)!;
    const check = (op: FakeCall["op"], signal?: AbortSignal): void => this.#check(op, signal);
    const calls = this.calls;
    const vms = this.vms;
    return {
      id: instanceId(id),
      providerType: vm.providerType,
      address: `${id}.fake.invalid`,
      remoteUser: "root",
      tags: Object.freeze({ ...vm.tags }),
      setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
        calls.push({ op: "setTags", instanceId: instanceId(id), tags: { ...tags } });
        try {
          check("setTags", signal);
        } catch (err) {
          return Promise.reject(err);
        }
        const cur = vms.get(id);
        if (cur === undefined) return Promise.reject(new Error(`${id} does not exist`));
        cur.tags = { ...tags };
        return Promise.resolve();
      },
      priceHistory(): readonly InstancePrice[] {
        return [];
      },
      destroy(signal?: AbortSignal): Promise<void> {
        calls.push({ op: "destroy", instanceId: instanceId(id) });
        try {
          check("destroy", signal);
        } catch (err) {
          return Promise.reject(err);
        }
        vms.delete(id);
        return Promise.resolve();
      },
      verifyHostKey(): Promise<HostKeyVerdict> {
        return Promise.resolve({ kind: "not-implemented" });
      },
    };
  }
}

/** A plain instance type for tests. */
export function testInstanceType(overrides: Partial<InstanceType> = {}): InstanceType {
  return {
    Name: "small",
    ProviderType: "t3.small",
    VCPUs: 2,
    RAM: 2 * 2 ** 30,
    IncludedScratch: 0,
    AddedScratch: 0,
    Scratch: 0,
    Price: 0.02,
    Preemptible: false,
    GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
    ...overrides,
  };
}
