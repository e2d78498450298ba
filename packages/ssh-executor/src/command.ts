/*
 * Pure helpers: address parsing and command-line building. Kept apart from the connection code
 * so they are unit-tested with tables.
 */

export const INSTANCE_SECRET_PATH = "/var/run/arvados-instance-secret";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Splits "host", "host:port", "[v6]:port" or a bare IPv6 address. A missing port takes
 * `defaultPort` ("" means the ssh service, 22). Returns a string describing the problem
 * when the address is unusable.
 */
export function parseAddress(address: string, defaultPort: string): HostPort | string {
  if (address === "") return "instance has no address";
  let host = address;
  let port = "";
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(address);
  if (bracketed) {
    host = bracketed[1] ?? "";
    port = bracketed[2] ?? "";
  } else {
    const colons = address.split(":").length - 1;
    if (colons === 1) {
      const i = address.indexOf(":");
      host = address.slice(0, i);
      port = address.slice(i + 1);
    }
    // Two or more colons without brackets: a bare IPv6 address.
  }
  if (port === "") port = defaultPort === "" || defaultPort === "ssh" ? "22" : defaultPort;
  const n = Number(port);
  if (host === "" || !/^\d+$/.test(port) || n < 1 || n > 65535) {
    return `invalid address ${JSON.stringify(address)}`;
  }
  return { host, port: n };
}

/** user@host:port, with IPv6 hosts in brackets: how every error names its target. */
export function describeTarget(user: string, hp: HostPort): string {
  const host = hp.host.includes(":") ? `[${hp.host}]` : hp.host;
  return `${user}@${host}:${hp.port}`;
}

/** Quotes a string for a POSIX shell: single quotes, with embedded ones spliced in. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The command line sent to the server. Environment variables travel as an `export` prefix
 * rather than SSH `env` requests: sshd silently drops every variable its AcceptEnv does not
 * list (and cloud images list almost none), while the prefix works on any server whose login
 * shell is POSIX. `export …;` rather than `VAR=x cmd` so compound commands see them too.
 * The values are visible in the VM's process list, so secrets go on stdin instead.
 */
export function buildCommandLine(command: string, env?: Readonly<Record<string, string>>): string {
  const entries = Object.entries(env ?? {});
  if (entries.length === 0) return command;
  for (const [name] of entries) {
    if (!envName.test(name))
      throw new TypeError(`invalid environment variable name ${JSON.stringify(name)}`);
  }
  const assignments = entries.map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ");
  return `export ${assignments}; ${command}`;
}

/** The command that reads the instance secret: root reads it directly, others through sudo. */
export function instanceSecretCommand(remoteUser: string): string {
  const cmd = `cat ${INSTANCE_SECRET_PATH}`;
  return remoteUser === "root" ? cmd : `sudo ${cmd}`;
}
