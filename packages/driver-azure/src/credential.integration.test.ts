// The production credential path, end to end: the driver builds a ClientSecretCredential from
// TenantID/ClientID/ClientSecret, MSAL logs in at a fake Entra ID authority over https, and the
// bearer token it gets is what the fake ARM server (also https) receives. Both peers use one
// self-signed certificate, trusted through the driver's caCertificates (the SDK pipelines' TLS
// options), not through the process environment.
import { instanceSetId } from "@dispatch-cloud/arvados-types";
import {
  selfSignedCertificate,
  type SelfSignedCertificate,
} from "@dispatch-cloud/arvados-types/testing";
import type { CreateRequest, InstanceSet } from "@dispatch-cloud/cloud-driver-api";
import { ManualClock, testInstanceType } from "@dispatch-cloud/cloud-driver-api/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAzureDriver, type AzureDriverOptions } from "./index.js";
import {
  FakeAad,
  FakeArm,
  fakeCredential,
  recordingLogger,
  type LogLine,
} from "./testing/index.js";

const TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const CLIENT_ID = "55555555-6666-7777-8888-999999999999";
const SECRET = "correct-horse-battery-staple";
const SET_ID = "zzzzz-cred";
const RG = "zzzzz";

const request: CreateRequest = {
  instanceType: testInstanceType({ ProviderType: "Standard_D2s_v3" }),
  imageId: "zzzzz-compute-v1",
  tags: { ArvadosInstanceSetID: SET_ID },
  initCommand: "true",
  publicKey: null,
};

let tls: SelfSignedCertificate;
let aad: FakeAad;
let arm: FakeArm;

beforeAll(async () => {
  tls = selfSignedCertificate();
  [aad, arm] = await Promise.all([
    FakeAad.start({ tls, tenantId: TENANT, clientId: CLIENT_ID, clientSecret: SECRET }),
    FakeArm.start({ tls }),
  ]);
});
afterAll(async () => {
  await Promise.all([aad.close(), arm.close()]);
});

const sets: InstanceSet[] = [];
afterEach(async () => {
  for (const s of sets.splice(0)) await s.stop();
});

async function driver(
  options: AzureDriverOptions,
  overrides: Record<string, unknown> = {},
): Promise<{ set: InstanceSet; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const set = await createAzureDriver({ clock: new ManualClock(0), pollIntervalMs: 1, ...options })(
    {
      parameters: {
        SubscriptionID: "00000000-1111-2222-3333-444444444444",
        TenantID: TENANT,
        ClientID: CLIENT_ID,
        ClientSecret: SECRET,
        ResourceGroup: RG,
        ImageResourceGroup: "zzzzz-images",
        Network: "zzzzz",
        Subnet: "zzzzz-subnet-private",
        ResourceManagerEndpoint: arm.endpoint,
        ActiveDirectoryEndpoint: aad.authorityHost,
        ...overrides,
      },
      instanceSetId: instanceSetId(SET_ID),
      sharedResourceTags: {},
      logger: recordingLogger(logs),
      registry: null,
    },
  );
  sets.push(set);
  return { set, logs };
}

describe("ClientSecretCredential against a fake authority over https", () => {
  it("logs in once with the tenant, client id and secret, and ARM receives that bearer token", async () => {
    const armBefore = arm.received.length;
    const { set } = await driver({ caCertificates: tls.cert });
    const inst = await set.create(request);
    expect(await set.instances({})).toHaveLength(1);
    await inst.destroy();

    // MSAL read the tenant's OpenID configuration from the configured host (no instance
    // discovery elsewhere), then asked for an ARM token once; both clients reused it.
    expect(aad.requests).toEqual([
      `GET /${TENANT}/v2.0/.well-known/openid-configuration`,
      `POST /${TENANT}/oauth2/v2.0/token`,
    ]);
    expect(aad.tokenRequests).toEqual([
      {
        tenant: TENANT,
        grantType: "client_credentials",
        clientId: CLIENT_ID,
        scope: "https://management.azure.com/.default",
        secretMatched: true,
      },
    ]);
    const seen = arm.received.slice(armBefore);
    // NIC and VM creates, their polls, both listings and the delete: every one authenticated.
    expect(seen.map((r) => r.method)).toEqual(expect.arrayContaining(["PUT", "GET", "DELETE"]));
    expect(new Set(seen.map((r) => r.authorization))).toEqual(new Set([`Bearer ${aad.issued[0]}`]));
  });

  it("reports a rejected secret with the authority's error, never the secret", async () => {
    const tokensBefore = aad.tokenRequests.length;
    const armBefore = arm.received.length;
    const { set, logs } = await driver(
      { caCertificates: tls.cert },
      { ClientSecret: "wrong-secret-value" },
    );
    const err = (await set.instances({}).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain("AADSTS7000215");
    expect(err.message).not.toContain("wrong-secret-value");
    expect(JSON.stringify(logs)).not.toContain("wrong-secret-value");
    expect(aad.tokenRequests.slice(tokensBefore).map((t) => t.secretMatched)).toEqual([false]);
    // No token, no call to ARM.
    expect(arm.received.length).toBe(armBefore);
  });

  it("does not trust the peers' self-signed certificate unless given it", async () => {
    const aadBefore = aad.requests.length;
    const armBefore = arm.received.length;
    // The login: MSAL reports only that it could not resolve the authority's endpoints.
    const login = await driver({});
    await expect(login.set.instances({})).rejects.toThrow("endpoints_resolution_error");
    // ARM, with a token from elsewhere: the TLS error itself.
    const direct = await driver({ credential: fakeCredential });
    await expect(direct.set.instances({})).rejects.toThrow(/self[- ]signed certificate/i);
    // Neither handshake got as far as a request.
    expect(aad.requests.length).toBe(aadBefore);
    expect(arm.received.length).toBe(armBefore);
  });
});
