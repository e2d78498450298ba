import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import type { Parsed } from "./units.js";

/** The dispatcher's SSH key (`Containers.DispatchPrivateKey`), parsed and checked. */
export interface DispatchKey {
  /** The key text as given (PEM or OpenSSH format), for SSH clients. Secret. */
  readonly text: string;
  readonly type: "rsa" | "ecdsa" | "ed25519";
  /** The private key, for signing. */
  readonly keyObject: KeyObject;
  /** The public key as an authorized_keys line without comment, e.g. `ssh-ed25519 AAAA…`. */
  readonly authorizedKey: string;
}

const opensshBegin = "-----BEGIN OPENSSH PRIVATE KEY-----";
const opensshEnd = "-----END OPENSSH PRIVATE KEY-----";

/**
 * Parses an unencrypted SSH private key in PEM (PKCS#1, SEC1, PKCS#8) or OpenSSH
 * (`openssh-key-v1`) form. node:crypto reads PEM itself; OpenSSH keys are decoded here and
 * rebuilt as JWK so both forms yield the same KeyObject.
 */
export function parsePrivateKey(text: string): Parsed<DispatchKey> {
  const trimmed = text.trim();
  if (!trimmed.startsWith("-----BEGIN ")) {
    return {
      ok: false,
      error: "not a PEM or OpenSSH private key (expected -----BEGIN ... PRIVATE KEY-----)",
    };
  }
  if (/ENCRYPTED|Proc-Type: 4,ENCRYPTED/.test(trimmed.split("\n", 3).join("\n"))) {
    return {
      ok: false,
      error: "the private key is passphrase-protected; the dispatcher needs an unencrypted key",
    };
  }
  let keyObject: KeyObject;
  if (trimmed.startsWith(opensshBegin)) {
    const r = parseOpenSsh(trimmed);
    if (!r.ok) return r;
    keyObject = r.value;
  } else {
    if (!/^-----BEGIN (RSA |EC |DSA )?PRIVATE KEY-----/.test(trimmed)) {
      return { ok: false, error: `not a private key (found "${trimmed.split("\n", 1)[0]}")` };
    }
    try {
      keyObject = createPrivateKey({ key: trimmed, format: "pem" });
    } catch (err) {
      return { ok: false, error: `unreadable private key: ${describe(err)}` };
    }
  }
  const kind = keyObject.asymmetricKeyType;
  const type =
    kind === "rsa" ? "rsa" : kind === "ec" ? "ecdsa" : kind === "ed25519" ? "ed25519" : null;
  if (type === null) {
    // Deliberately narrower than Arvados (which also takes DSA): no cloud we drive accepts DSA.
    return {
      ok: false,
      error: `unsupported key type "${kind ?? "unknown"}" (use RSA, ECDSA or ed25519)`,
    };
  }
  const authorized = authorizedKeyOf(keyObject);
  if (!authorized.ok) return authorized;
  return { ok: true, value: { text, type, keyObject, authorizedKey: authorized.value } };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Reads the SSH wire-format fields of an openssh-key-v1 blob. */
class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  uint32(): number {
    if (this.pos + 4 > this.buf.length) throw new Error("truncated key data");
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(): Buffer {
    const n = this.uint32();
    if (this.pos + n > this.buf.length) throw new Error("truncated key data");
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  string(): string {
    return this.bytes().toString("latin1");
  }
  raw(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new Error("truncated key data");
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
}

const curves: Readonly<Record<string, { crv: string; size: number }>> = {
  nistp256: { crv: "P-256", size: 32 },
  nistp384: { crv: "P-384", size: 48 },
  nistp521: { crv: "P-521", size: 66 },
};

/** An SSH mpint as unsigned big-endian bytes without leading zeros. */
function unsigned(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function toBig(b: Buffer): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${b.toString("hex")}`);
}

function fromBig(n: bigint): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, "hex");
}

const b64u = (b: Buffer): string => b.toString("base64url");

function padTo(b: Buffer, size: number): Buffer {
  const u = unsigned(b);
  if (u.length >= size) return u;
  return Buffer.concat([Buffer.alloc(size - u.length), u]);
}

function parseOpenSsh(text: string): Parsed<KeyObject> {
  const end = text.indexOf(opensshEnd);
  if (end < 0) return { ok: false, error: `OpenSSH private key has no "${opensshEnd}" line` };
  const body = text.slice(opensshBegin.length, end).replace(/\s+/g, "");
  const blob = Buffer.from(body, "base64");
  const magic = "openssh-key-v1\0";
  if (blob.subarray(0, magic.length).toString("latin1") !== magic) {
    return { ok: false, error: "OpenSSH private key data does not start with openssh-key-v1" };
  }
  try {
    const r = new Reader(blob.subarray(magic.length));
    const cipher = r.string();
    r.string(); // kdf name
    r.bytes(); // kdf options
    if (cipher !== "none") {
      return {
        ok: false,
        error: "the private key is passphrase-protected; the dispatcher needs an unencrypted key",
      };
    }
    const count = r.uint32();
    if (count !== 1)
      return {
        ok: false,
        error: `OpenSSH private key file holds ${count} keys; expected exactly 1`,
      };
    r.bytes(); // public key
    const priv = new Reader(r.bytes());
    if (priv.uint32() !== priv.uint32()) {
      return { ok: false, error: "OpenSSH private key check integers differ (corrupt key)" };
    }
    const keyType = priv.string();
    let jwk: Record<string, string>;
    if (keyType === "ssh-ed25519") {
      const pub = priv.bytes();
      const secret = priv.bytes();
      if (pub.length !== 32 || secret.length !== 64)
        return { ok: false, error: "malformed ed25519 key" };
      jwk = { kty: "OKP", crv: "Ed25519", x: b64u(pub), d: b64u(secret.subarray(0, 32)) };
    } else if (keyType.startsWith("ecdsa-sha2-")) {
      const curve = curves[priv.string()];
      if (!curve) return { ok: false, error: `unsupported ECDSA curve in ${keyType}` };
      const q = priv.bytes();
      const d = priv.bytes();
      if (q[0] !== 4 || q.length !== 1 + 2 * curve.size)
        return { ok: false, error: "malformed ECDSA public point" };
      jwk = {
        kty: "EC",
        crv: curve.crv,
        x: b64u(q.subarray(1, 1 + curve.size)),
        y: b64u(q.subarray(1 + curve.size)),
        d: b64u(padTo(d, curve.size)),
      };
    } else if (keyType === "ssh-rsa") {
      const n = unsigned(priv.bytes());
      const e = unsigned(priv.bytes());
      const d = unsigned(priv.bytes());
      const iqmp = unsigned(priv.bytes());
      const p = unsigned(priv.bytes());
      const q = unsigned(priv.bytes());
      const dBig = toBig(d);
      const dp = fromBig(dBig % (toBig(p) - 1n));
      const dq = fromBig(dBig % (toBig(q) - 1n));
      jwk = {
        kty: "RSA",
        n: b64u(n),
        e: b64u(e),
        d: b64u(d),
        p: b64u(p),
        q: b64u(q),
        dp: b64u(dp),
        dq: b64u(dq),
        qi: b64u(iqmp),
      };
    } else {
      return { ok: false, error: `unsupported key type "${keyType}" (use RSA, ECDSA or ed25519)` };
    }
    return { ok: true, value: createPrivateKey({ key: jwk, format: "jwk" }) };
  } catch (err) {
    return { ok: false, error: `unreadable OpenSSH private key: ${describe(err)}` };
  }
}

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function mpint(b: Buffer): Buffer {
  const u = unsigned(b);
  return sshString(u[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), u]) : u);
}

function authorizedKeyOf(key: KeyObject): Parsed<string> {
  const jwk = createPublicKey(key).export({ format: "jwk" });
  const buf = (s: string | undefined): Buffer => Buffer.from(s ?? "", "base64url");
  let wire: Buffer;
  let name: string;
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") {
    name = "ssh-ed25519";
    wire = Buffer.concat([sshString(name), sshString(buf(jwk.x))]);
  } else if (jwk.kty === "RSA") {
    name = "ssh-rsa";
    wire = Buffer.concat([sshString(name), mpint(buf(jwk.e)), mpint(buf(jwk.n))]);
  } else if (jwk.kty === "EC") {
    const curve = Object.entries(curves).find(([, c]) => c.crv === jwk.crv);
    if (!curve) return { ok: false, error: `unsupported ECDSA curve ${jwk.crv ?? "?"}` };
    name = `ecdsa-sha2-${curve[0]}`;
    const point = Buffer.concat([
      Buffer.from([4]),
      padTo(buf(jwk.x), curve[1].size),
      padTo(buf(jwk.y), curve[1].size),
    ]);
    wire = Buffer.concat([sshString(name), sshString(curve[0]), sshString(point)]);
  } else {
    return {
      ok: false,
      error: `unsupported key type "${jwk.kty ?? "unknown"}" (use RSA, ECDSA or ed25519)`,
    };
  }
  return { ok: true, value: `${name} ${wire.toString("base64")}` };
}
