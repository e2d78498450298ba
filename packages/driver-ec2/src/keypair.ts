import { createHash, createPublicKey } from "node:crypto";
import { DescribeKeyPairsCommand, ImportKeyPairCommand, type EC2Client } from "@aws-sdk/client-ec2";
import { authorizedKeyWire, errorMessage } from "@dispatch-cloud/cloud-driver-api";
import { Ec2DriverError } from "./errors.js";

export const KEY_PAIR_NAME_PREFIX = "arvados-dispatch-keypair-";

function readSshString(buf: Buffer, offset: number): { value: Buffer; next: number } {
  if (offset + 4 > buf.length) throw new Error("truncated key");
  const len = buf.readUInt32BE(offset);
  const end = offset + 4 + len;
  if (end > buf.length) throw new Error("truncated key");
  return { value: buf.subarray(offset + 4, end), next: end };
}

function hexColons(digest: Buffer): string {
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * The fingerprints AWS shows for a public key, most specific first. RSA: MD5 (what AWS gives an
 * imported key) and SHA-1 (what it gives a key it generated) of the DER SubjectPublicKeyInfo —
 * not OpenSSH's fingerprint. Other types: OpenSSH's SHA256 form with and without `=` padding.
 */
export function awsKeyFingerprints(authorizedKey: string): [string, string] {
  const wire = authorizedKeyWire(authorizedKey);
  if (wire === undefined) throw new Error("not an authorized_keys line");
  const type = readSshString(wire, 0);
  if (type.value.toString() === "ssh-rsa") {
    const e = readSshString(wire, type.next);
    const n = readSshString(wire, e.next);
    const key = createPublicKey({
      key: { kty: "RSA", e: unsignedBase64url(e.value), n: unsignedBase64url(n.value) },
      format: "jwk",
    });
    const der = key.export({ type: "spki", format: "der" });
    return [
      hexColons(createHash("md5").update(der).digest()),
      hexColons(createHash("sha1").update(der).digest()),
    ];
  }
  const sha = `SHA256:${createHash("sha256").update(wire).digest("base64").replace(/=+$/, "")}`;
  return [`${sha}=`, sha];
}

/** An SSH mpint as the unsigned big-endian bytes JWK wants. */
function unsignedBase64url(mpint: Buffer): string {
  let i = 0;
  while (i < mpint.length - 1 && mpint[i] === 0) i++;
  return mpint.subarray(i).toString("base64url");
}

/**
 * Finds the EC2 key pair holding a public key, importing it when there is none. Names this
 * resolver imported are cached; a pre-existing key pair found by fingerprint is looked up again
 * on each call, as Arvados does, so a key pair deleted by an operator is noticed.
 */
export class KeyPairResolver {
  readonly #client: EC2Client;
  readonly #imported = new Map<string, string>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(client: EC2Client) {
    this.#client = client;
  }

  /** Serialised, so concurrent creates import a key once. */
  resolve(publicKey: string, signal?: AbortSignal): Promise<string> {
    const run = this.#queue.then(() => this.#resolve(publicKey, signal));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #resolve(publicKey: string, signal?: AbortSignal): Promise<string> {
    let fingerprints: [string, string];
    let wire: Buffer;
    try {
      fingerprints = awsKeyFingerprints(publicKey);
      wire = authorizedKeyWire(publicKey)!;
    } catch (err) {
      throw new Ec2DriverError("key-pair", `Could not make key fingerprint: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const cached = this.#imported.get(fingerprints[0]);
    if (cached !== undefined) return cached;

    let found: string | undefined;
    try {
      const resp = await this.#client.send(
        new DescribeKeyPairsCommand({ Filters: [{ Name: "fingerprint", Values: fingerprints }] }),
        signalOption(signal),
      );
      found = resp.KeyPairs?.find((k) => k.KeyName !== undefined)?.KeyName;
    } catch (err) {
      throw new Ec2DriverError("key-pair", `Could not search for keypair: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    if (found !== undefined) return found;

    const name = KEY_PAIR_NAME_PREFIX + fingerprints[0];
    const type = publicKey.trim().split(/\s+/)[0]!;
    try {
      await this.#client.send(
        new ImportKeyPairCommand({
          KeyName: name,
          PublicKeyMaterial: Buffer.from(`${type} ${wire.toString("base64")}\n`),
        }),
        signalOption(signal),
      );
    } catch (err) {
      throw new Ec2DriverError("key-pair", `Could not import keypair: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    this.#imported.set(fingerprints[0], name);
    return name;
  }
}

/** The SDK's per-call options carrying an abort signal, if any. */
export function signalOption(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal === undefined ? {} : { abortSignal: signal };
}
