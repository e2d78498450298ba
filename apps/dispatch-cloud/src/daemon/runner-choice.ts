import path from "node:path";
import type { ClusterConfig } from "@dispatch-cloud/config";

/** Arvados's DeployRunnerBinary default: "the dispatcher's own binary", i.e. its crunch-run. */
export const SELF_EXE = "/proc/self/exe";

/** Drivers whose "VMs" are this machine or a simulation: the demo's and the tests'. */
const LOCAL_DRIVERS: ReadonlySet<string> = new Set(["loopback", "stub"]);

export type RunnerKind =
  /** Nothing is deployed; `Containers.CrunchRunCommand` on the image runs (Arvados's crunch-run). */
  | "image"
  /** Our bundled Node runner (apps/crunch-run) is deployed. */
  | "bundled"
  /** The named file is deployed as is (e.g. a Go crunch-run from an Arvados release). */
  | "file";

export interface RunnerChoice {
  readonly kind: RunnerKind;
  /** What the pool deploys (its `deployRunnerBinary`): a local file, or "" for nothing. */
  readonly deploy: string;
  /** One line for the operator: which runner runs on the VMs, and why. */
  readonly summary: string;
}

export interface RunnerChoiceInput {
  /** `Containers.CloudVMs.Driver`. */
  readonly driver: string;
  /** `Containers.CloudVMs.DeployRunnerBinary`. */
  readonly deployRunnerBinary: string;
  /** `Containers.CrunchRunCommand`. */
  readonly crunchRunCommand: string;
  /** Where our bundled runner is (apps/crunch-run/dist/crunch-run.cjs). */
  readonly bundledPath: string;
}

/**
 * Which crunch-run the dispatcher runs on its VMs. For Arvados, `/proc/self/exe` (the default)
 * deploys the dispatcher's own binary, which *is* Arvados's crunch-run. Ours is not, and our
 * bundled runner cannot run real workflows (no Keep, no log or output collections), so on a
 * real cloud the default runs Arvados's crunch-run from the image (Arvados's compute images
 * have the crunch-run package) instead of deploying ours. Our runner stays the default only
 * for the loopback and stub drivers (the demo and the tests), and runs anywhere it is named.
 */
export function chooseRunner(input: RunnerChoiceInput): RunnerChoice {
  const { driver, deployRunnerBinary: configured, crunchRunCommand, bundledPath } = input;
  const fromImage = (why: string): RunnerChoice => ({
    kind: "image",
    deploy: "",
    summary: `crunch-run on the VMs: ${JSON.stringify(crunchRunCommand)} already on the image (Containers.CrunchRunCommand), nothing deployed: ${why}`,
  });
  if (configured === "") {
    return fromImage('Containers.CloudVMs.DeployRunnerBinary is ""');
  }
  if (configured === SELF_EXE) {
    if (LOCAL_DRIVERS.has(driver)) {
      return {
        kind: "bundled",
        deploy: bundledPath,
        summary: `crunch-run on the VMs: the bundled runner ${bundledPath}, deployed: DeployRunnerBinary is ${SELF_EXE} (the default) with the ${driver} driver`,
      };
    }
    return fromImage(
      `DeployRunnerBinary is ${SELF_EXE} (the default), which in Arvados deploys the dispatcher's own crunch-run; this dispatcher has none to deploy on a real cloud (to deploy the bundled runner anyway, set DeployRunnerBinary to ${bundledPath})`,
    );
  }
  if (path.resolve(configured) === path.resolve(bundledPath)) {
    return {
      kind: "bundled",
      deploy: configured,
      summary: `crunch-run on the VMs: the bundled runner ${configured}, deployed: named by DeployRunnerBinary`,
    };
  }
  return {
    kind: "file",
    deploy: configured,
    summary: `crunch-run on the VMs: ${configured}, deployed: named by DeployRunnerBinary`,
  };
}

/** `chooseRunner` for a loaded cluster config. */
export function runnerChoiceFor(cluster: ClusterConfig, bundledPath: string): RunnerChoice {
  return chooseRunner({
    driver: cluster.Containers.CloudVMs.Driver,
    deployRunnerBinary: cluster.Containers.CloudVMs.DeployRunnerBinary,
    crunchRunCommand: cluster.Containers.CrunchRunCommand,
    bundledPath,
  });
}
