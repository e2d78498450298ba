import { defineConfig } from "vitest/config";

// Tests run against each package's TypeScript source (the "source" export condition), so a
// change is tested without a build; the apps' end-to-end tests run the built dist.
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts", "tests/src/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    // Peer-backed tests start servers; give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // The pinned EC2 SDK's notice that later releases need Node 22 (the apps silence it too).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    maxWorkers: 2,
  },
});
