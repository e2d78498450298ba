import { FakeInstanceSet } from "./fake-set.js";
import { runConformanceSuite } from "./conformance.js";
import { CapacityError, QuotaError, RateLimitError } from "../errors.js";

// The suite against the in-memory fake, so the suite itself is exercised in this package.
runConformanceSuite(
  "fake",
  () => {
    const set = new FakeInstanceSet();
    return Promise.resolve({
      set,
      cleanup: () => set.stop(),
      injectCreateError(kind) {
        const e =
          kind === "rate-limit"
            ? new RateLimitError("throttled", new Date(Date.now() + 1000))
            : kind === "quota"
              ? new QuotaError("quota")
              : new CapacityError("none", "all");
        set.failNext("create", e);
      },
    });
  },
  { injectableErrors: ["rate-limit", "quota", "capacity"] },
);
