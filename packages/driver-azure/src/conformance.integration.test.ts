import { instanceSetId } from "@dispatch-cloud/arvados-types";
import { runConformanceSuite } from "@dispatch-cloud/cloud-driver-api/testing";
import { createAzureDriver } from "./index.js";
import { FakeArm, fakeCredential, recordingLogger } from "./testing/index.js";

runConformanceSuite(
  "azure (fake ARM)",
  async () => {
    const fake = await FakeArm.start();
    const set = await createAzureDriver({ credential: fakeCredential, pollIntervalMs: 1 })({
      parameters: {
        SubscriptionID: "sub-conf",
        ResourceGroup: "rg-conf",
        Network: "net",
        Subnet: "subnet",
        ResourceManagerEndpoint: fake.endpoint,
      },
      instanceSetId: instanceSetId("zzzzz-conformance"),
      sharedResourceTags: {},
      logger: recordingLogger([]),
      registry: null,
    });
    return {
      set,
      cleanup: async () => {
        await set.stop();
        await fake.close();
      },
      injectCreateError: (kind) => {
        if (kind === "rate-limit") {
          fake.failNext(
            { method: "PUT", kind: "networkInterfaces" },
            { status: 429, code: "TooManyRequests", message: "throttled" },
          );
        } else {
          fake.failNext(
            { method: "PUT", kind: "virtualMachines" },
            {
              status: 409,
              code: "OperationNotAllowed",
              message: "results in exceeding approved Total Regional Cores quota",
              async: true,
            },
          );
        }
      },
    };
  },
  { injectableErrors: ["rate-limit", "quota"] },
);
