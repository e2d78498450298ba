import type { InstanceType } from "@dispatch-cloud/arvados-types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapacityError, QuotaError, RateLimitError } from "../errors.js";
import { generateEd25519KeyPair } from "../ssh-keys.js";
import { createTags, initCommandWithSecret, tagKeys } from "../tags.js";
import type { Instance, InstanceSet, InstanceTags } from "../types.js";
import { testInstanceType } from "./fake-set.js";

/** The error kinds a fixture can make the driver produce on demand. */
export type InjectableErrorKind = "rate-limit" | "quota" | "capacity";

/** What one conformance run works on. */
export interface ConformanceFixture {
  readonly set: InstanceSet;
  /** Stop the set and release the peer (moto, fake ARM server, …). */
  cleanup(): Promise<void>;
  /**
   * Make the driver's next create fail with this kind, through the peer (e.g. a fake server
   * answering with the provider's error). Needed for every kind in `options.injectableErrors`.
   */
  injectCreateError?(kind: InjectableErrorKind): void | Promise<void>;
}

export interface ConformanceOptions {
  /** A type the driver can create (default: a small non-preemptible `t3.small`). */
  readonly instanceType?: InstanceType;
  readonly imageId?: string;
  /**
   * The driver holds at most this many instances and answers a further create with a quota
   * error (loopback: 1). Default: no limit checked.
   */
  readonly maxInstances?: number;
  /** Preemptible and on-demand types get different quota groups (default true; loopback: false). */
  readonly quotaGroupsDifferForPreemptible?: boolean;
  /** Listings may lag behind changes: retry a check this many times (default 1 = no retry). */
  readonly listAttempts?: number;
  /** Error kinds the fixture's `injectCreateError` can produce; one test per kind (default none). */
  readonly injectableErrors?: readonly InjectableErrorKind[];
  /** Instance-set id tag value to use (default `conformance-<name>`). */
  readonly instanceSetId?: string;
}

/**
 * Declare the driver conformance tests with vitest: create with tags, init command and key; the
 * instance is listed with its tags; setTags; quota groups; destroy and disappearance; snapshot
 * semantics; aborted calls; error kinds. `setup` runs once for the whole suite; the suite
 * destroys what it created.
 */
export function runConformanceSuite(
  name: string,
  setup: () => Promise<ConformanceFixture>,
  options: ConformanceOptions = {},
): void {
  describe(`driver conformance: ${name}`, () => {
    const keys = tagKeys();
    const type = options.instanceType ?? testInstanceType();
    const setId = options.instanceSetId ?? `conformance-${name}`;
    const key = generateEd25519KeyPair("conformance");
    const attempts = Math.max(1, options.listAttempts ?? 1);
    let fixture: ConformanceFixture;
    let seq = 0;
    const created: Instance[] = [];

    const request = (extra: InstanceTags = {}) => {
      const secret = `${"0".repeat(39)}${++seq}`.slice(-40);
      return {
        instanceType: type,
        imageId: options.imageId ?? "conformance-image",
        tags: { ...createTags(keys, setId, type, secret), ...extra },
        initCommand: initCommandWithSecret(secret, "true"),
        publicKey: key.publicKey,
      };
    };
    const createOne = async (extra: InstanceTags = {}): Promise<Instance> => {
      const inst = await fixture.set.create(request(extra));
      created.push(inst);
      return inst;
    };
    const destroyAll = async (): Promise<void> => {
      while (created.length > 0) await created.pop()!.destroy();
    };
    /** Retry `check` on fresh listings until it passes or attempts run out. */
    const eventually = async (check: (list: Instance[]) => void): Promise<void> => {
      for (let i = 1; ; i++) {
        const list = (await fixture.set.instances({ [keys.instanceSetId]: setId })).filter(
          (x) => x.tags[keys.instanceSetId] === setId,
        );
        try {
          check(list);
          return;
        } catch (err) {
          if (i >= attempts) throw err;
        }
      }
    };

    beforeAll(async () => {
      fixture = await setup();
    });
    afterAll(async () => {
      await destroyAll().catch(() => undefined);
      await fixture?.cleanup();
    });

    it("creates an instance carrying the requested tags and type", async () => {
      const req = request({ extra: "value" });
      const inst = await fixture.set.create(req);
      created.push(inst);
      expect(inst.id).not.toBe("");
      expect(inst.providerType).toBe(type.ProviderType);
      expect(inst.remoteUser).not.toBe("");
      expect(inst.tags).toMatchObject(req.tags);
      await destroyAll();
    });

    it("lists the instance with its tags, and not after destroy", async () => {
      const inst = await createOne({ listed: "yes" });
      await eventually((list) => {
        const found = list.find((i) => i.id === inst.id);
        expect(found?.tags).toMatchObject({ listed: "yes", [keys.instanceSetId]: setId });
        expect(found?.providerType).toBe(type.ProviderType);
      });
      await inst.destroy();
      created.splice(created.indexOf(inst), 1);
      await eventually((list) => expect(list.map((i) => i.id)).not.toContain(inst.id));
    });

    it("setTags changes later listings but not the caller's snapshot", async () => {
      const inst = await createOne();
      const before = { ...inst.tags };
      await inst.setTags({ ...inst.tags, [keys.idleBehavior]: "hold", added: "1" });
      expect(inst.tags).toEqual(before);
      await eventually((list) => {
        const found = list.find((i) => i.id === inst.id);
        expect(found?.tags).toMatchObject({ [keys.idleBehavior]: "hold", added: "1" });
      });
      await destroyAll();
    });

    it("snapshots do not change under the caller", async () => {
      const req = request({ snap: "a" });
      const inst = await fixture.set.create(req);
      created.push(inst);
      (req.tags as Record<string, string>)["snap"] = "mutated";
      expect(inst.tags["snap"]).toBe("a");
      const [listed] = (await fixture.set.instances({ [keys.instanceSetId]: setId })).filter(
        (i) => i.id === inst.id,
      );
      try {
        if (listed !== undefined) (listed.tags as Record<string, string>)["snap"] = "mutated";
      } catch {
        // frozen snapshots are fine too
      }
      await eventually((list) =>
        expect(list.find((i) => i.id === inst.id)?.tags["snap"]).toBe("a"),
      );
      await destroyAll();
    });

    it("gives quota groups as strings", () => {
      const onDemand = fixture.set.instanceQuotaGroup(type);
      const spot = fixture.set.instanceQuotaGroup({ ...type, Preemptible: true });
      expect(typeof onDemand).toBe("string");
      expect(typeof spot).toBe("string");
    });
    const quotaGroupChecks = (options.quotaGroupsDifferForPreemptible ?? true) ? ["differ"] : [];
    for (const _ of quotaGroupChecks) {
      it("gives preemptible and on-demand types different quota groups", () => {
        expect(fixture.set.instanceQuotaGroup({ ...type, Preemptible: true })).not.toBe(
          fixture.set.instanceQuotaGroup(type),
        );
      });
    }

    it("rejects a create whose signal is already aborted, creating nothing", async () => {
      const ac = new AbortController();
      ac.abort(new Error("conformance abort"));
      await expect(
        fixture.set.create(request({ aborted: "yes" }), ac.signal),
      ).rejects.toBeInstanceOf(Error);
      await eventually((list) =>
        expect(list.filter((i) => i.tags["aborted"] === "yes")).toEqual([]),
      );
    });

    for (const max of options.maxInstances === undefined ? [] : [options.maxInstances]) {
      it(`answers a create beyond ${max} instance(s) with a quota error`, async () => {
        for (let i = 0; i < max; i++) await createOne();
        const err: unknown = await fixture.set.create(request()).catch((e: unknown) => e);
        expect(QuotaError.is(err)).toBe(true);
        await destroyAll();
      });
    }

    const guards: Record<InjectableErrorKind, (e: unknown) => boolean> = {
      "rate-limit": (e) => RateLimitError.is(e),
      quota: (e) => QuotaError.is(e),
      capacity: (e) => CapacityError.is(e),
    };
    for (const kind of options.injectableErrors ?? []) {
      it(`passes a ${kind} error from the provider as that kind`, async () => {
        if (fixture.injectCreateError === undefined)
          throw new Error("fixture has no injectCreateError");
        await fixture.injectCreateError(kind);
        const err: unknown = await fixture.set.create(request()).catch((e: unknown) => e);
        expect(guards[kind](err)).toBe(true);
      });
    }
  });
}
