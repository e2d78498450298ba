import { execFileSync } from "node:child_process";
import { createPublicKey, sign, verify } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { parsePrivateKey } from "./private-key.js";

// Keys come from OpenSSH's own ssh-keygen, the tool operators use, in both file formats.
const dir = mkdtempSync(path.join(tmpdir(), "config-keys-"));
function keygen(name: string, args: string[]): { priv: string; pub: string } {
  const file = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-N", "", "-C", "", "-f", file, ...args]);
  return { priv: readFileSync(file, "utf8"), pub: readFileSync(`${file}.pub`, "utf8").trim() };
}

describe("parsePrivateKey", () => {
  test.each([
    ["rsa", "OpenSSH", ["-t", "rsa", "-b", "2048"]],
    ["rsa", "PEM", ["-t", "rsa", "-b", "2048", "-m", "PEM"]],
    ["rsa", "PKCS8", ["-t", "rsa", "-b", "2048", "-m", "PKCS8"]],
    ["ed25519", "OpenSSH", ["-t", "ed25519"]],
    ["ecdsa", "OpenSSH", ["-t", "ecdsa", "-b", "256"]],
    ["ecdsa", "OpenSSH", ["-t", "ecdsa", "-b", "521"]],
    ["ecdsa", "PEM", ["-t", "ecdsa", "-b", "384", "-m", "PEM"]],
  ] as const)("%s key in %s form", (type, form, args) => {
    const { priv, pub } = keygen(`${type}-${form}-${args.join("")}`, [...args]);
    const r = parsePrivateKey(priv);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.type).toBe(type);
    expect(r.value.text).toBe(priv);
    // The public key we derive is exactly what ssh-keygen wrote.
    expect(r.value.authorizedKey).toBe(pub);
    // And the KeyObject really is that key: a signature verifies with the public half.
    const data = Buffer.from("probe");
    const alg = type === "ed25519" ? null : "sha256";
    const sig = sign(alg, data, r.value.keyObject);
    expect(verify(alg, data, createPublicKey(r.value.keyObject), sig)).toBe(true);
  });

  test("a passphrase-protected OpenSSH key is refused with a clear reason", () => {
    const file = path.join(dir, "enc");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "s3cret", "-C", "", "-f", file]);
    expect(parsePrivateKey(readFileSync(file, "utf8"))).toEqual({
      ok: false,
      error: "the private key is passphrase-protected; the dispatcher needs an unencrypted key",
    });
  });

  test("a passphrase-protected PEM key is refused", () => {
    const file = path.join(dir, "encpem");
    execFileSync("ssh-keygen", [
      "-q",
      "-t",
      "rsa",
      "-b",
      "2048",
      "-m",
      "PEM",
      "-N",
      "s3cret",
      "-C",
      "",
      "-f",
      file,
    ]);
    const r = parsePrivateKey(readFileSync(file, "utf8"));
    expect(r).toEqual({
      ok: false,
      error: "the private key is passphrase-protected; the dispatcher needs an unencrypted key",
    });
  });

  test("a truncated OpenSSH key is refused without throwing", () => {
    const { priv } = keygen("trunc", ["-t", "ed25519"]);
    const lines = priv.trim().split("\n");
    const cut = [lines[0], lines[1], lines.at(-1)].join("\n");
    const r = parsePrivateKey(cut);
    expect(r).toEqual({
      ok: false,
      error: expect.stringMatching(
        /^unreadable OpenSSH private key: truncated key data|^malformed/,
      ),
    });
  });

  test("OpenSSH data with the wrong magic is refused", () => {
    const bogus = `-----BEGIN OPENSSH PRIVATE KEY-----\n${Buffer.from("not a key at all").toString("base64")}\n-----END OPENSSH PRIVATE KEY-----\n`;
    expect(parsePrivateKey(bogus)).toEqual({
      ok: false,
      error: "OpenSSH private key data does not start with openssh-key-v1",
    });
  });
});
