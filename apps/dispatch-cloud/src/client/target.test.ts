import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ArvadosApiError, type ArvadosErrorInit } from "@dispatch-cloud/arvados-client";
import { afterAll, describe, expect, test } from "vitest";
import type { CliIo } from "../io.js";
import { ClientError, explainApiError, resolveTarget } from "./target.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "client-target-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function config(name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `Clusters:\n  zzzzz:\n${body}`);
  return file;
}

const TOKEN = "systemroottoken0123456789abcdefghij";
const full = config(
  "full.yml",
  `    SystemRootToken: ${TOKEN}
    ManagementToken: managementtoken0123456789abcdefgh
    Services:
      Controller: {ExternalURL: "https://zzzzz.example.com/"}
      DispatchCloud: {InternalURLs: {"http://10.0.0.1:9006": {}, "http://10.0.0.2:9006": {}}}
`,
);

const io = (env: Record<string, string>): CliIo => ({
  stdout: () => undefined,
  stderr: () => undefined,
  env,
  readStdin: () => Promise.resolve(""),
});

async function target(env: Record<string, string>, flag?: string) {
  const t = await resolveTarget(io(env), flag);
  await t.close();
  return {
    api: t.api.baseUrl,
    tokenSource: t.tokenSource,
    dispatchers: t.dispatchers.map((d) => d.baseUrl),
  };
}

async function refused(env: Record<string, string>, flag?: string): Promise<string> {
  const err = await resolveTarget(io(env), flag).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ClientError);
  return (err as ClientError).message;
}

const apiEnv = { ARVADOS_API_HOST: "zzzzz.example.org", ARVADOS_API_TOKEN: "usertoken" };

describe("which cluster and token", () => {
  test("a config named by --config or $ARVADOS_CONFIG wins over ARVADOS_API_*", async () => {
    const fromConfig = {
      api: "https://zzzzz.example.com/",
      tokenSource: `the SystemRootToken in ${full}`,
      dispatchers: ["http://10.0.0.1:9006/", "http://10.0.0.2:9006/"],
    };
    expect(await target(apiEnv, full)).toEqual(fromConfig);
    expect(await target({ ...apiEnv, ARVADOS_CONFIG: full })).toEqual(fromConfig);
  });

  test("otherwise ARVADOS_API_HOST (host:port means https) and ARVADOS_API_TOKEN", async () => {
    expect(await target(apiEnv)).toEqual({
      api: "https://zzzzz.example.org/",
      tokenSource: "ARVADOS_API_TOKEN",
      dispatchers: [],
    });
    expect(
      (await target({ ARVADOS_API_HOST: "http://127.0.0.1:8000", ARVADOS_API_TOKEN: "t" })).api,
    ).toBe("http://127.0.0.1:8000/");
  });

  test("otherwise /etc/arvados/config.yml", async () => {
    expect(await refused({})).toMatch(/^\/etc\/arvados\/config\.yml: /);
    expect(await refused({ ARVADOS_CONFIG: "" })).toMatch(/^\/etc\/arvados\/config\.yml: /);
  });

  test("half the environment, or a config without what a client needs, is one clear line", async () => {
    expect(await refused({ ARVADOS_API_HOST: "h" })).toBe(
      "ARVADOS_API_HOST is set but ARVADOS_API_TOKEN is not",
    );
    expect(await refused({ ARVADOS_API_TOKEN: "t" })).toBe(
      "ARVADOS_API_TOKEN is set but ARVADOS_API_HOST is not",
    );
    expect(await refused({ ARVADOS_API_HOST: "http://", ARVADOS_API_TOKEN: "t" })).toBe(
      'ARVADOS_API_HOST "http://" is not a host:port or a URL',
    );
    const noController = config("no-controller.yml", `    SystemRootToken: ${TOKEN}\n`);
    expect(await refused({}, noController)).toBe(
      `${noController}: Services.Controller.ExternalURL is not set: no API server to talk to`,
    );
    const noToken = config(
      "no-token.yml",
      `    Services: {Controller: {ExternalURL: "http://127.0.0.1:1/"}}\n`,
    );
    expect(await refused({}, noToken)).toBe(`${noToken}: SystemRootToken is not set`);
    const broken = config("broken.yml", "    SystemRootToken: not/alphanumeric\n    Bogus: [\n");
    expect(await refused({}, broken)).not.toContain("\n");
  });

  test("no ManagementToken: no dispatcher to ask", async () => {
    const file = config(
      "no-management.yml",
      `    SystemRootToken: ${TOKEN}
    Services:
      Controller: {ExternalURL: "http://127.0.0.1:1/"}
      DispatchCloud: {InternalURLs: {"http://10.0.0.1:9006": {}}}
`,
    );
    expect((await target({}, file)).dispatchers).toEqual([]);
  });
});

describe("explainApiError", () => {
  const e = (init: Partial<ArvadosErrorInit>): ArvadosApiError =>
    new ArvadosApiError({
      kind: "http",
      method: "GET",
      url: "https://zzzzz.example.com/arvados/v1/containers/x",
      ...init,
    });
  const refusedCert = new TypeError("fetch failed", {
    cause: Object.assign(new Error("self-signed certificate"), {
      code: "DEPTH_ZERO_SELF_SIGNED_CERT",
    }),
  });
  const plainHttp = new TypeError("fetch failed", {
    cause: Object.assign(
      new Error("0A00010B:SSL routines:ssl3_get_record:wrong version number\n"),
      {
        code: "ERR_SSL_WRONG_VERSION_NUMBER",
      },
    ),
  });
  const refusedConn = new TypeError("fetch failed", {
    cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
  });
  test.each([
    [
      e({ status: 401, statusLine: "401 Unauthorized", errors: ["Not logged in"] }),
      "https://zzzzz.example.com refused the token (401 Unauthorized: Not logged in): check ARVADOS_API_TOKEN",
    ],
    [
      e({ status: 422, statusLine: "422 Unprocessable Entity", errors: ["a", "b"] }),
      "GET https://zzzzz.example.com/arvados/v1/containers/x: 422 Unprocessable Entity: a; b",
    ],
    [
      e({ kind: "network", detail: "fetch failed", cause: refusedConn }),
      "cannot reach https://zzzzz.example.com: connect ECONNREFUSED 127.0.0.1:1",
    ],
    [
      e({ kind: "network", detail: "fetch failed", cause: refusedCert }),
      "cannot reach https://zzzzz.example.com: self-signed certificate (ARVADOS_API_HOST_INSECURE=1, or TLS.Insecure in the config, accepts any certificate)",
    ],
    [
      e({ kind: "network", detail: "fetch failed", cause: plainHttp }),
      "cannot reach https://zzzzz.example.com: it does not speak TLS (for a plain-http server give http://HOST:PORT)",
    ],
    [
      e({ kind: "timeout", detail: "no answer" }),
      "https://zzzzz.example.com did not answer GET /arvados/v1/containers/x within 30s",
    ],
    [
      e({ kind: "decode", status: 200, statusLine: "200 OK" }),
      "https://zzzzz.example.com answered GET /arvados/v1/containers/x with 200 OK that is not JSON: is it an Arvados API server?",
    ],
  ])("%s", (err, text) => {
    expect(explainApiError(err, "ARVADOS_API_TOKEN")).toBe(text);
  });
});
