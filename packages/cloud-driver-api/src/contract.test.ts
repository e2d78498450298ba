import { describe, expect, it } from "vitest";
import { CapacityError, NotImplementedError, QuotaError, RateLimitError } from "./errors.js";
import { normalizePriceHistory } from "./price.js";
import { createDriverRegistry, UnsupportedDriverError } from "./registry.js";
import { generateEd25519KeyPair, authorizedKeyWire } from "./ssh-keys.js";
import { initCommandWithSecret, tagKeys } from "./tags.js";
import type { DriverFactory } from "./types.js";

describe("normalizePriceHistory", () => {
  it("matches the spec's test vector", () => {
    const t0 = Date.UTC(2024, 0, 1);
    const at = (min: number, Price: number) => ({ StartTime: new Date(t0 + min * 60_000), Price });
    const got = normalizePriceHistory([
      at(1, 1.0),
      at(4, 1.2),
      at(5, 1.1),
      at(3, 1.2),
      at(5, 1.1),
      at(2, 1.0),
    ]);
    expect(got).toEqual([at(5, 1.1), at(3, 1.2), at(1, 1.0)]);
  });
  it("does not modify its input", () => {
    const input = [
      { StartTime: new Date(1), Price: 1 },
      { StartTime: new Date(2), Price: 2 },
    ];
    normalizePriceHistory(input);
    expect(input.map((p) => p.Price)).toEqual([1, 2]);
  });
});

describe("error guards", () => {
  // What another copy of this package would make: same Symbol.for brand, different class.
  const brand = Symbol.for("@dispatch-cloud/cloud-driver-api/error-kind");
  const foreign = (kind: string) => Object.assign(new Error("copy"), { [brand]: kind });

  it("recognise errors branded by another copy of the package", () => {
    expect(RateLimitError.is(foreign("rate-limit"))).toBe(true);
    expect(QuotaError.is(foreign("quota"))).toBe(true);
    expect(CapacityError.is(foreign("capacity"))).toBe(true);
    expect(NotImplementedError.is(foreign("not-implemented"))).toBe(true);
  });
  it("tell the kinds apart and reject plain values", () => {
    const q = new QuotaError("full");
    expect([RateLimitError.is(q), QuotaError.is(q), CapacityError.is(q)]).toEqual([
      false,
      true,
      false,
    ]);
    for (const v of [new Error("x"), null, undefined, "quota", 42, {}]) {
      expect(RateLimitError.is(v) || QuotaError.is(v) || CapacityError.is(v)).toBe(false);
    }
  });
  it("keep their data", () => {
    const r = new RateLimitError("slow", new Date(1234), { cause: "c" });
    expect(r.earliestRetry.getTime()).toBe(1234);
    expect(r.cause).toBe("c");
    expect(new CapacityError("x", "quota-group").scope).toBe("quota-group");
  });
});

describe("tags", () => {
  it("use the prefix", () => {
    expect(tagKeys()).toEqual({
      instanceSetId: "ArvadosInstanceSetID",
      instanceType: "ArvadosInstanceType",
      idleBehavior: "ArvadosIdleBehavior",
      instanceSecret: "ArvadosInstanceSecret",
    });
    expect(tagKeys("X").instanceSecret).toBe("XInstanceSecret");
  });
  it("write the secret first in the init command", () => {
    expect(initCommandWithSecret("abc", "echo hi")).toBe(
      'umask 0177 && echo -n "abc" >/var/run/arvados-instance-secret\necho hi',
    );
  });
});

describe("driver registry", () => {
  const ec2: DriverFactory = () => Promise.reject(new Error("unused"));
  it("finds registered drivers and names unknown ones exactly", () => {
    const reg = createDriverRegistry({ ec2 });
    expect(reg.lookupDriver("ec2")).toBe(ec2);
    expect(reg.names()).toEqual(["ec2"]);
    expect(() => reg.lookupDriver("gce")).toThrow('unsupported cloud driver "gce"');
    expect(() => reg.lookupDriver("EC2")).toThrow(UnsupportedDriverError);
  });
});

describe("ssh keys", () => {
  it("make distinct ed25519 keys whose authorized_keys line matches the wire key", () => {
    const a = generateEd25519KeyPair("me");
    const b = generateEd25519KeyPair();
    expect(a.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect(a.publicKey).toMatch(/^ssh-ed25519 \S+ me$/);
    expect(authorizedKeyWire(a.publicKey)?.equals(a.publicKeyWire)).toBe(true);
    expect(a.publicKeyWire.equals(b.publicKeyWire)).toBe(false);
    expect(authorizedKeyWire("ssh-rsa notbase64!")).toBeUndefined();
  });
});
