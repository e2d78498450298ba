import { recordingLogger, runConformanceSuite } from "@dispatch-cloud/cloud-driver-api/testing";
import { gceErrors, gceInstanceType, startGceHarness } from "./testing/index.js";

const SET_ID = "zzzzz-gj3su-conformancegce1";

runConformanceSuite(
  "gce (fake Compute API)",
  async () => {
    const h = await startGceHarness({ logger: recordingLogger([]), instanceSetId: SET_ID });
    return {
      set: h.set,
      cleanup: () => h.stop(),
      injectCreateError(kind) {
        h.fake.failNext(
          { call: "insert" },
          kind === "rate-limit"
            ? gceErrors.tooManyRequests()
            : kind === "quota"
              ? gceErrors.quotaExceeded("INSTANCES", 24, "us-central1")
              : gceErrors.zoneResourcePoolExhausted(h.fake.project, "us-central1-a"),
        );
      },
    };
  },
  {
    instanceType: gceInstanceType(),
    imageId: "arvados-compute-1",
    instanceSetId: SET_ID,
    // A deleted VM is listed (STOPPING) until its delete operation finishes.
    listAttempts: 3,
    injectableErrors: ["rate-limit", "quota", "capacity"],
  },
);
