import { generateKeyPairSync, createHash } from "node:crypto";

/**
 * An SSH key pair in the text forms SSH tools and ssh2 accept. Drivers that serve SSH themselves
 * (loopback, stub) make host keys with it; tests make dispatcher keys with it.
 */
export interface SshKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` text (unencrypted). */
  readonly privateKey: string;
  /** An authorized_keys line: `ssh-ed25519 AAAA… comment`. */
  readonly publicKey: string;
  /** The public key in SSH wire format, as a server presents it during the handshake. */
  readonly publicKeyWire: Buffer;
}

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/**
 * A fresh ed25519 key pair. ssh2 does not read PKCS#8, so the private key is written in the
 * openssh-key-v1 format by hand (unencrypted: cipher and kdf "none").
 */
export function generateEd25519KeyPair(comment = ""): SshKeyPair {
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d!, "base64url");
  const pub = Buffer.from(jwk.x!, "base64url");
  const wire = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  // The check integers only need to match each other; derive them so no randomness is needed.
  const check = createHash("sha256").update(pub).digest().readUInt32BE(0);
  let priv = Buffer.concat([
    uint32(check),
    uint32(check),
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const blob = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    uint32(1),
    sshString(wire),
    sshString(priv),
  ]);
  const b64 = blob.toString("base64").replace(/.{1,70}/g, "$&\n");
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${wire.toString("base64")}${comment === "" ? "" : ` ${comment}`}`,
    publicKeyWire: wire,
  };
}

/**
 * The wire-format key of an authorized_keys line (`type base64 [comment]`), or undefined when
 * the line is not one.
 */
export function authorizedKeyWire(line: string): Buffer | undefined {
  const parts = line.trim().split(/\s+/);
  const type = parts[0];
  const b64 = parts[1];
  if (type === undefined || b64 === undefined || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return undefined;
  const wire = Buffer.from(b64, "base64");
  if (wire.length < 4) return undefined;
  const len = wire.readUInt32BE(0);
  if (wire.subarray(4, 4 + len).toString() !== type) return undefined;
  return wire;
}
