import { describe, expect, it } from "vitest";
import { SELF_EXE, chooseRunner, type RunnerKind } from "./runner-choice.js";

const BUNDLED = "/opt/dispatch-cloud/apps/crunch-run/dist/crunch-run.cjs";

describe("chooseRunner", () => {
  it.each<[string, string, RunnerKind, string, RegExp]>([
    // driver, DeployRunnerBinary → kind, what is deployed, why
    ["ec2", SELF_EXE, "image", "", /in Arvados deploys the dispatcher's own crunch-run/],
    ["azure", SELF_EXE, "image", "", /set DeployRunnerBinary to \/opt\/.*crunch-run\.cjs/],
    ["gce", SELF_EXE, "image", "", /nothing deployed/],
    ["loopback", SELF_EXE, "bundled", BUNDLED, /\(the default\) with the loopback driver/],
    ["stub", SELF_EXE, "bundled", BUNDLED, /with the stub driver/],
    ["ec2", "", "image", "", /DeployRunnerBinary is ""/],
    ["loopback", "", "image", "", /DeployRunnerBinary is ""/],
    ["ec2", BUNDLED, "bundled", BUNDLED, /the bundled runner .* named by DeployRunnerBinary/],
    ["azure", "/usr/local/bin/crunch-run", "file", "/usr/local/bin/crunch-run", /named by/],
    ["loopback", "/srv/arvados-server", "file", "/srv/arvados-server", /named by/],
  ])("%s with DeployRunnerBinary %j → %s", (driver, configured, kind, deploy, why) => {
    const choice = chooseRunner({
      driver,
      deployRunnerBinary: configured,
      crunchRunCommand: "crunch-run",
      bundledPath: BUNDLED,
    });
    expect(choice).toMatchObject({ kind, deploy });
    expect(choice.summary).toMatch(/^crunch-run on the VMs: /);
    expect(choice.summary).toMatch(why);
  });

  it("names the image's command when nothing is deployed", () => {
    const choice = chooseRunner({
      driver: "ec2",
      deployRunnerBinary: SELF_EXE,
      crunchRunCommand: "/usr/bin/crunch-run",
      bundledPath: BUNDLED,
    });
    expect(choice.summary).toMatch(
      /^crunch-run on the VMs: "\/usr\/bin\/crunch-run" already on the image/,
    );
  });
});
