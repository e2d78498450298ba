/*
 * Module hooks (node:module register) that let ESM code import ssh2's named exports.
 *
 * ssh2 is CommonJS and Node's static export detection does not find `utils`, so
 * `import { Client, utils } from "ssh2"` (as @dispatch-cloud/ssh-executor's build does) fails
 * under plain Node with "Named export 'utils' not found" — vitest hides this because it
 * transforms modules itself. Until that import is changed to the default-import form, the
 * daemon serves "ssh2" through a small ESM wrapper that re-exports every property by name.
 */
import { fileURLToPath } from "node:url";

const PREFIX = "dispatch-cloud-ssh2:";
const NAMES = [
  "AgentProtocol",
  "BaseAgent",
  "createAgent",
  "Client",
  "CygwinAgent",
  "HTTPAgent",
  "HTTPSAgent",
  "OpenSSHAgent",
  "PageantAgent",
  "Server",
  "utils",
];

interface ResolveResult {
  url: string;
  shortCircuit?: boolean;
  format?: string | null;
}
type NextResolve = (specifier: string, context: unknown) => Promise<ResolveResult>;
interface LoadResult {
  format: string;
  source?: string | Buffer;
  shortCircuit?: boolean;
}
type NextLoad = (url: string, context: unknown) => Promise<LoadResult>;

export async function resolve(
  specifier: string,
  context: { parentURL?: string },
  next: NextResolve,
): Promise<ResolveResult> {
  if (specifier !== "ssh2" || context.parentURL?.startsWith(PREFIX) === true) {
    return next(specifier, context);
  }
  const real = await next(specifier, context);
  return { url: `${PREFIX}${encodeURIComponent(real.url)}`, shortCircuit: true };
}

export async function load(url: string, context: unknown, next: NextLoad): Promise<LoadResult> {
  if (!url.startsWith(PREFIX)) return next(url, context);
  const real = decodeURIComponent(url.slice(PREFIX.length));
  const file = fileURLToPath(real);
  const source = [
    `import { createRequire } from "node:module";`,
    `const ssh2 = createRequire(${JSON.stringify(real)})(${JSON.stringify(file)});`,
    `export default ssh2;`,
    `export const { ${NAMES.join(", ")} } = ssh2;`,
  ].join("\n");
  return { format: "module", source, shortCircuit: true };
}
