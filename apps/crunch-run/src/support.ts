/**
 * What this runner cannot do faithfully. It has no Keep client, writes no log or output
 * collection, and materialises no mount but scratch space; Arvados's crunch-run does all of
 * that. A container that needs any of it is refused (Cancelled, with the reason and the fix in
 * runtime_status) rather than run with something silently missing.
 */

/** The parts of a container record the check reads. */
export interface ContainerNeeds {
  readonly container_image: string;
  readonly mounts: Readonly<Record<string, { readonly kind: string }>> | null;
  readonly output_glob?: readonly string[] | null;
}

/** A Keep portable data hash: how a real cluster names a container's Docker image. */
const PDH = /^[0-9a-f]{32}\+\d+$/;

function mountProblem(target: string, kind: string, secret: boolean): string {
  const what = `${secret ? "secret " : ""}${JSON.stringify(kind)} mount at ${JSON.stringify(target)}`;
  switch (kind) {
    case "collection":
    case "keep":
      return `${what} (needs Keep)`;
    case "file":
      return `${what} (writes into the output collection)`;
    default:
      return `${what} (only "tmp" mounts are supported)`;
  }
}

/**
 * The unsupported features `container` (with its `secretMounts`) needs, each named, in a stable
 * order; empty if this runner can run it. `engine` is the requested runtime engine.
 */
export function unsupportedFeatures(
  container: ContainerNeeds,
  secretMounts: Readonly<Record<string, { readonly kind: string }>>,
  engine: string,
): string[] {
  const problems: string[] = [];
  if (engine === "singularity") {
    problems.push("the singularity runtime engine (--runtime-engine=singularity)");
  }
  if (PDH.test(container.container_image)) {
    problems.push(
      `container image ${container.container_image} is a Keep collection (needs Keep and docker load)`,
    );
  }
  for (const [target, m] of Object.entries(container.mounts ?? {}).sort(([a], [b]) =>
    a < b ? -1 : 1,
  )) {
    if (m.kind !== "tmp") problems.push(mountProblem(target, m.kind, false));
  }
  for (const [target, m] of Object.entries(secretMounts).sort(([a], [b]) => (a < b ? -1 : 1))) {
    problems.push(mountProblem(target, m.kind, true));
  }
  if ((container.output_glob ?? []).length > 0) {
    problems.push("output_glob (the output must be saved as a collection)");
  }
  return problems;
}

/** The runtime_status a refused container ends with. */
export function refusal(problems: readonly string[]): { error: string; errorDetail: string } {
  return {
    error: `dispatch-cloud's crunch-run cannot run this container faithfully: ${problems.join("; ")}. Use Arvados's crunch-run.`,
    errorDetail:
      "This runner has no Keep client: it supports tmp mounts only, images named without Keep, " +
      "the docker and process engines, and saves no output or log collection. Have the " +
      "dispatcher run Arvados's crunch-run on the VMs: set Containers.CloudVMs.DeployRunnerBinary " +
      'to "" (with crunch-run installed on the image, Containers.CrunchRunCommand) or to the ' +
      "path of a Go crunch-run binary to deploy.",
  };
}
