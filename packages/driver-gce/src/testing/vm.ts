/*
 * What a test needs to play a fake GCE VM's first boot on this machine: run its startup-script
 * the way the guest environment would, but with a /run of the VM's own, and read back what the
 * script wrote (the instance secret) and the key the `ssh-keys` metadata authorizes.
 */
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { FakeInstance } from "./fake-gce.js";

const run = promisify(execFile);

export interface BootedVm {
  /** The VM's private address (127.0.x.y from the fake). */
  readonly address: string;
  /** The VM's /run (and so /var/run) after its startup script: give it to sshd as its /run. */
  readonly runDir: string;
  /** What the startup-script wrote to /var/run/arvados-instance-secret. */
  readonly secret: string;
  /** The user and public key from the `ssh-keys` metadata, or undefined without one. */
  readonly sshKey: { readonly user: string; readonly publicKey: string } | undefined;
  /** Remove the VM's /run. */
  remove(): Promise<void>;
}

function item(inst: FakeInstance, key: string): string | undefined {
  return inst.metadata.items.find((i) => i.key === key)?.value;
}

/**
 * Run the instance's startup-script as root in a private mount namespace whose /run is a new
 * directory holding what a booted Linux has there (`lock`, world-writable). Needs root and
 * util-linux's unshare.
 */
export async function bootFakeVm(inst: FakeInstance): Promise<BootedVm> {
  const script = item(inst, "startup-script");
  if (script === undefined) throw new Error(`instance ${inst.name} has no startup-script`);
  const runDir = await mkdtemp(path.join(os.tmpdir(), "gce-vm-run-"));
  const remove = () => rm(runDir, { recursive: true, force: true });
  try {
    await chmod(runDir, 0o755);
    await mkdir(path.join(runDir, "lock"));
    await chmod(path.join(runDir, "lock"), 0o1777);
    await run("unshare", [
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$1" /run && exec sh -c "$2"',
      "sh",
      runDir,
      script,
    ]);
    const secret = await readFile(path.join(runDir, "arvados-instance-secret"), "utf8");
    const keys = item(inst, "ssh-keys");
    const colon = keys?.indexOf(":") ?? -1;
    return {
      address: inst.networkInterfaces[0]?.networkIP ?? "",
      runDir,
      secret,
      sshKey:
        keys === undefined || colon < 0
          ? undefined
          : { user: keys.slice(0, colon), publicKey: keys.slice(colon + 1) },
      remove,
    };
  } catch (err) {
    await remove();
    throw err;
  }
}
