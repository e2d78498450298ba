/*
 * A real OpenSSH server for tests: its own config, host key and authorized_keys in a temp dir,
 * in the foreground on a free loopback port. Needs Debian's openssh-server and root (the
 * per-connection privilege separation and, for `instanceSecret` or `runDir`, a private mount
 * namespace).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "@dispatch-cloud/arvados-types/testing";

const run = promisify(execFile);

export interface SshdOptions {
  /** Loopback address to listen on (default 127.0.0.1). Tests never listen elsewhere. */
  readonly host?: string;
  /**
   * When set, sshd runs in a private mount namespace whose /run (and so
   * /var/run/arvados-instance-secret) holds this value, leaving the machine's /run alone.
   */
  readonly instanceSecret?: string;
  /**
   * A directory to serve as /run in sshd's private mount namespace, as a booted VM's own /run
   * (e.g. what its startup script wrote there). `instanceSecret`, if also given, is added to it.
   */
  readonly runDir?: string;
  /** More public keys (OpenSSH one-line format) to authorize besides the generated one. */
  readonly authorizedKeys?: readonly string[];
  /** Extra sshd_config lines, e.g. `SetEnv PATH=/shim:/usr/bin:/bin`. */
  readonly extraConfig?: readonly string[];
  /**
   * Keep the login user's own HOME. By default HOME is the temp dir, so bash does not source
   * the machine's ~/.bashrc for every command (on a developer box that can cost 100 ms each).
   */
  readonly keepHome?: boolean;
  /** How long to wait for the server to answer (default 10 s). */
  readonly readyTimeoutMs?: number;
}

export interface Sshd {
  readonly host: string;
  readonly port: number;
  /** The login user (the user running the tests, normally root). */
  readonly user: string;
  /** The authorized client key, OpenSSH private key text. */
  readonly privateKey: string;
  /** The client key's public half, one OpenSSH line. */
  readonly publicKey: string;
  /** The server's host key, one OpenSSH line ("ssh-ed25519 AAAA…"). */
  readonly hostPublicKey: string;
  /** The host key's wire-format blob, as ssh2 hands it to a host verifier. */
  readonly hostKeyBlob: Buffer;
  /** The temp dir holding config, keys and pid file. */
  readonly dir: string;
  /** Everything sshd logged so far (it runs with -e). */
  log(): string;
  /** How many logins sshd accepted so far (one per TCP connection that authenticated). */
  acceptedLogins(): number;
  /** Kills sshd and every connection it serves, then starts it again on the same port and keys. */
  restart(): Promise<void>;
  /** Kills sshd and its connections and removes the temp dir. */
  stop(): Promise<void>;
}

export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const host = options.host ?? "127.0.0.1";
  const dir = await mkdtemp(path.join(os.tmpdir(), "sshd-test-"));
  const hostKeyPath = path.join(dir, "host_ed25519");
  const clientKeyPath = path.join(dir, "client_ed25519");
  await Promise.all([
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f", hostKeyPath]),
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test-client", "-f", clientKeyPath]),
  ]);
  const [privateKey, publicKey, hostPublicKey] = await Promise.all([
    readFile(clientKeyPath, "utf8"),
    readFile(`${clientKeyPath}.pub`, "utf8").then((s) => s.trim()),
    readFile(`${hostKeyPath}.pub`, "utf8").then((s) => s.trim()),
  ]);
  await writeFile(
    path.join(dir, "authorized_keys"),
    [publicKey, ...(options.authorizedKeys ?? [])].join("\n") + "\n",
  );

  const runDir =
    options.runDir ?? (options.instanceSecret !== undefined ? path.join(dir, "run") : undefined);
  if (runDir !== undefined) {
    await mkdir(path.join(runDir, "sshd"), { recursive: true, mode: 0o755 });
  }
  if (runDir !== undefined && options.instanceSecret !== undefined) {
    await writeFile(path.join(runDir, "arvados-instance-secret"), options.instanceSecret, {
      mode: 0o600,
    });
  }
  // sshd (and `sshd -t`) insist on the privilege separation directory existing.
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });

  const port = await freePort(host);
  const configPath = path.join(dir, "sshd_config");
  await writeFile(
    configPath,
    [
      `Port ${port}`,
      `ListenAddress ${host}`,
      `HostKey ${hostKeyPath}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "PermitRootLogin prohibit-password",
      "UseDNS no",
      "PrintMotd no",
      // Room for a hundred concurrent commands on one connection and many connections at once.
      "MaxSessions 500",
      "MaxStartups 500",
      "LogLevel INFO",
      ...(options.keepHome ? [] : [`SetEnv HOME=${dir}`]),
      ...(options.extraConfig ?? []),
      "",
    ].join("\n"),
  );
  await run("/usr/sbin/sshd", ["-t", "-f", configPath]);

  let logText = "";
  let child: ChildProcess | undefined;
  const launch = async () => {
    const args = ["-D", "-e", "-f", configPath];
    const proc = runDir
      ? spawn(
          "unshare",
          [
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$1" /run && shift && exec "$@"',
            "sh",
            runDir,
            "/usr/sbin/sshd",
            ...args,
          ],
          { stdio: ["ignore", "pipe", "pipe"] },
        )
      : spawn("/usr/sbin/sshd", args, { stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout?.on("data", (b: Buffer) => (logText += b.toString("utf8")));
    proc.stderr?.on("data", (b: Buffer) => (logText += b.toString("utf8")));
    child = proc;
    await waitReady(host, port, proc, options.readyTimeoutMs ?? 10_000, () => logText);
  };
  const kill = async () => {
    const proc = child;
    child = undefined;
    if (!proc?.pid || proc.exitCode !== null) return;
    // The per-connection sshd processes outlive the listener: end them too, by pid.
    const pids = [...(await descendants(proc.pid)), proc.pid];
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await exited;
  };
  await launch();

  const hostKeyBlob = Buffer.from(hostPublicKey.split(/\s+/)[1] ?? "", "base64");
  return {
    host,
    port,
    user: os.userInfo().username,
    privateKey,
    publicKey,
    hostPublicKey,
    hostKeyBlob,
    dir,
    log: () => logText,
    acceptedLogins: () => logText.match(/Accepted publickey for /g)?.length ?? 0,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until the server sends its SSH banner; fails early if sshd exits. */
async function waitReady(
  host: string,
  port: number,
  proc: ChildProcess,
  timeoutMs: number,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(
        `sshd exited before becoming ready (exit ${proc.exitCode ?? proc.signalCode}):\n${log()}`,
      );
    }
    if (await bannerAt(host, port)) return;
    if (Date.now() > deadline)
      throw new Error(`sshd on ${host}:${port} not ready after ${timeoutMs} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function bannerAt(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = "";
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("data", (b: Buffer) => {
      buf += b.toString("latin1");
      if (buf.includes("\n")) done(buf.startsWith("SSH-2.0-"));
    });
    sock.on("error", () => done(false));
    sock.on("close", () => done(false));
  });
}

/** Every process below `pid`, from /proc (children before their own children are listed). */
async function descendants(pid: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      // The command name may hold spaces and parentheses: fields resume after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parentOf.set(Number(name), Number(fields[1]));
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}
