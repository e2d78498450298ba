// Helpers for the tests that run cloudtest against a real driver and an sshd "VM".
import { main, type CliIo } from "../main.js";

/** A free port for the SSHPort every test VM's sshd also listens on. */
export { freePort } from "@dispatch-cloud/arvados-types/testing";

/** cloudtest in-process with `yaml` on stdin (`-config -`) and `args`; never prompts. */
export async function runCloudtest(
  args: readonly string[],
  yaml: string,
  io: Partial<CliIo> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(["-config", "-", ...args], {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env: {},
    readStdin: () => Promise.resolve(yaml),
    waitForEnter: () => Promise.resolve(),
    pid: process.pid,
    ...io,
  });
  return { code, stdout, stderr };
}

/**
 * A one-cluster config.yml for cloudtest: the dispatch key from `keyFile`, the given
 * `CloudVMs` lines and, if any, `InstanceTypes` lines (each without its indentation).
 */
export function clusterYaml(
  keyFile: string,
  cloudVMs: readonly string[],
  instanceTypes: readonly string[] = [],
): string {
  return [
    "Clusters:",
    "  zzzzz:",
    "    Services: {Controller: {ExternalURL: https://zzzzz.example}}",
    "    Containers:",
    `      DispatchPrivateKey: file://${keyFile}`,
    "      CloudVMs:",
    ...cloudVMs.map((l) => `        ${l}`),
    ...(instanceTypes.length > 0
      ? ["    InstanceTypes:", ...instanceTypes.map((l) => `      ${l}`)]
      : []),
    "",
  ].join("\n");
}
