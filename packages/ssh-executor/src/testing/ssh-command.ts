import ssh2 from "ssh2";

export interface SshCommandTarget {
  /** "host:port". */
  readonly address: string;
  readonly user: string;
  readonly privateKey: string;
}

/**
 * Run one command over a fresh ssh2 connection, as a test client of a VM's SSH server: its exit
 * code and output, and the host key the server showed (accepted without a check).
 */
export function sshCommand(
  target: SshCommandTarget,
  command: string,
  opts: { env?: Record<string, string>; stdin?: string; readyTimeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string; hostKey: Buffer }> {
  const [host, port] = target.address.split(":");
  return new Promise((resolve, reject) => {
    let hostKey: Buffer = Buffer.alloc(0);
    const c = new ssh2.Client();
    c.on("error", reject);
    c.on("ready", () => {
      c.exec(command, opts.env === undefined ? {} : { env: opts.env }, (err, stream) => {
        if (err) return reject(err);
        let stdout = "";
        let stderr = "";
        let code = -1;
        stream.on("data", (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        stream.on("exit", (exitCode: number) => (code = exitCode));
        stream.on("close", () => {
          c.end();
          resolve({ code, stdout, stderr, hostKey });
        });
        stream.end(opts.stdin ?? "");
      });
    });
    c.connect({
      host: host ?? "",
      port: Number(port),
      username: target.user,
      privateKey: target.privateKey,
      ...(opts.readyTimeoutMs === undefined ? {} : { readyTimeout: opts.readyTimeoutMs }),
      hostVerifier: (key: Buffer) => {
        hostKey = key;
        return true;
      },
    });
  });
}
