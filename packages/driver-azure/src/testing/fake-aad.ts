/**
 * A fake Microsoft Entra ID (Azure AD) authority over https on 127.0.0.1, enough for the
 * client-credentials flow `ClientSecretCredential` runs through MSAL: the tenant's OpenID
 * configuration document, and a v2.0 token endpoint that checks the client id and secret and
 * issues opaque bearer tokens.
 *
 * Token requests are recorded without the secret (only whether it matched).
 */
import { randomUUID } from "node:crypto";
import https from "node:https";
import type http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeAadOptions {
  readonly tls: { readonly key: string; readonly cert: string };
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
}

export interface TokenRequest {
  readonly tenant: string;
  readonly grantType: string | null;
  readonly clientId: string | null;
  readonly scope: string | null;
  readonly secretMatched: boolean;
}

export class FakeAad {
  /** Every path requested, in order (`METHOD /path`). */
  readonly requests: string[] = [];
  readonly tokenRequests: TokenRequest[] = [];
  /** Access tokens handed out, in order. */
  readonly issued: string[] = [];

  private constructor(
    private readonly server: https.Server,
    /** The authority host to configure, `https://127.0.0.1:PORT`. */
    readonly authorityHost: string,
    private readonly options: FakeAadOptions,
  ) {}

  static async start(options: FakeAadOptions): Promise<FakeAad> {
    let fake: FakeAad | undefined;
    const server = https.createServer(
      { key: options.tls.key, cert: options.tls.cert },
      (req, res) => {
        fake!.handle(req, res).catch((err: unknown) => {
          json(res, 500, { error: "server_error", error_description: String(err) });
        });
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const { port } = server.address() as AddressInfo;
    fake = new FakeAad(server, `https://127.0.0.1:${port}`, options);
    return fake;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.authorityHost);
    const method = req.method ?? "GET";
    this.requests.push(`${method} ${url.pathname}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);

    const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(
      url.pathname,
    );
    if (m === null) return json(res, 404, { error: "not_found", error_description: url.pathname });
    const tenant = decodeURIComponent(m[1]!);
    if (tenant !== this.options.tenantId) {
      return json(res, 400, {
        error: "invalid_tenant",
        error_description: `AADSTS90002: Tenant '${tenant}' not found.`,
      });
    }
    const base = `${this.authorityHost}/${encodeURIComponent(tenant)}`;
    if (m[2]!.startsWith("v2.0/")) {
      if (method !== "GET") return json(res, 405, { error: "invalid_request" });
      return json(res, 200, {
        issuer: `${base}/v2.0`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
        token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt"],
      });
    }

    if (method !== "POST") return json(res, 405, { error: "invalid_request" });
    const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
    const request: TokenRequest = {
      tenant,
      grantType: form.get("grant_type"),
      clientId: form.get("client_id"),
      scope: form.get("scope"),
      secretMatched: form.get("client_secret") === this.options.clientSecret,
    };
    this.tokenRequests.push(request);
    if (request.grantType !== "client_credentials") {
      return json(res, 400, {
        error: "unsupported_grant_type",
        error_description: `AADSTS70003: grant type '${request.grantType}' is not supported.`,
      });
    }
    if (request.clientId !== this.options.clientId) {
      return json(res, 400, {
        error: "unauthorized_client",
        error_description: `AADSTS700016: Application with identifier '${request.clientId}' was not found in the directory.`,
      });
    }
    if (!request.secretMatched) {
      return json(res, 401, {
        error: "invalid_client",
        error_description:
          "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
      });
    }
    const token = `fake-aad-${randomUUID()}`;
    this.issued.push(token);
    return json(res, 200, {
      token_type: "Bearer",
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: token,
    });
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.end(JSON.stringify(body));
}
