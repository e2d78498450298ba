import { readFileSync } from "node:fs";
import net from "node:net";

/** Where the kernel hands out ports for listen(0) and outgoing connections. */
function ephemeralLow(): number {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && Number.isInteger(low) && low > 12_000) return low;
  } catch {
    // Not Linux: fall through to the common default.
  }
  return 32_768;
}

function tryListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/**
 * A port on `host` that nobody listens on, for a server whose address must
 * be known (written into a config, passed to a child) before it starts.
 *
 * The port is drawn at random from below the kernel's ephemeral range, so
 * nothing in the meantime takes it by accident: every listen(0) (a stub VM's
 * SSH server) and every outgoing connection gets a port from that range,
 * and a port from listen(0) picked now could be in use by then.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const low = 10_000;
  const high = ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await tryListen(port, host)) return port;
  }
  throw new Error(`no free port on ${host} in ${low}-${high - 1} after 100 tries`);
}
