/*
 * Service-account keys for tests, and the check the fake Compute API makes on every request:
 * the SDK signs its own RS256 JWT with the key (audience = the Compute API), as it does against
 * Google, so a test exercises the driver's real credential handling with no token server.
 */
import {
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  verify,
  type KeyObject,
} from "node:crypto";

export const COMPUTE_AUDIENCE = "https://compute.googleapis.com/";

/** A service-account JSON key, as the console downloads it. */
export interface ServiceAccountKeyFile {
  readonly type: "service_account";
  readonly project_id: string;
  readonly private_key_id: string;
  readonly private_key: string;
  readonly client_email: string;
  readonly client_id: string;
  readonly auth_uri: string;
  readonly token_uri: string;
}

/** A fresh key for `email` in `project` (a throwaway RSA key that grants access to nothing). */
export function newServiceAccountKey(
  project: string,
  email = `dispatcher@${project}.iam.gserviceaccount.com`,
): ServiceAccountKeyFile {
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return {
    type: "service_account",
    project_id: project,
    private_key_id: randomBytes(20).toString("hex"),
    private_key: privateKey,
    client_email: email,
    client_id: String(100_000_000_000_000_000_000n + BigInt(randomBytes(4).readUInt32BE())),
    auth_uri: "https://accounts.google.com/o/oauth2/auth",
    token_uri: "https://oauth2.googleapis.com/token",
  };
}

/** The public halves of the keys a fake accepts, by key id and by account email. */
export class TrustedKeys {
  readonly #byKid = new Map<string, KeyObject>();
  readonly #byEmail = new Map<string, KeyObject[]>();

  add(key: Pick<ServiceAccountKeyFile, "private_key" | "private_key_id" | "client_email">): void {
    const pub = createPublicKey(key.private_key);
    this.#byKid.set(key.private_key_id, pub);
    this.#byEmail.set(key.client_email, [...(this.#byEmail.get(key.client_email) ?? []), pub]);
  }

  /** Why `authorization` is not acceptable, or undefined when it is. */
  check(authorization: string | undefined, nowMs: number): string | undefined {
    const m = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(authorization ?? "");
    if (m === null) return "no bearer token";
    const [, h, p, s] = m;
    let header: { alg?: string; kid?: string };
    let payload: { iss?: string; aud?: string; exp?: number };
    try {
      header = JSON.parse(Buffer.from(h!, "base64url").toString("utf8")) as typeof header;
      payload = JSON.parse(Buffer.from(p!, "base64url").toString("utf8")) as typeof payload;
    } catch {
      return "token is not a JWT";
    }
    if (header.alg !== "RS256") return `unexpected JWT algorithm ${String(header.alg)}`;
    const candidates =
      header.kid !== undefined
        ? [this.#byKid.get(header.kid)].filter((k): k is KeyObject => k !== undefined)
        : (this.#byEmail.get(payload.iss ?? "") ?? []);
    const data = Buffer.from(`${h}.${p}`);
    const signature = Buffer.from(s!, "base64url");
    if (!candidates.some((k) => verify("RSA-SHA256", data, k, signature))) {
      return "JWT signature does not match a known key";
    }
    if (payload.aud !== COMPUTE_AUDIENCE) return `JWT audience is ${String(payload.aud)}`;
    if (typeof payload.exp !== "number" || payload.exp * 1000 < nowMs) return "JWT expired";
    return undefined;
  }
}
