/*
 * Module hooks that let the built @dispatch-cloud/ssh-executor load under plain Node.
 *
 * Its dist does `import { Client, utils } from "ssh2"`, but ssh2 is CommonJS and Node's
 * named-export detection does not find `utils` (vitest's interop hides this in tests), so the
 * import fails at startup. Until that package imports ssh2's default export, cloudtest serves
 * it an ES module that re-exports ssh2's properties by name.
 */
import type { LoadHook, ResolveHook } from "node:module";

const SHIM = "?cloudtest-esm-shim";

export const resolve: ResolveHook = async (specifier, context, next) => {
  const resolved = await next(specifier, context);
  if (
    specifier === "ssh2" &&
    context.parentURL?.includes("/ssh-executor/") === true &&
    !resolved.url.includes(SHIM)
  ) {
    return { ...resolved, url: `${resolved.url}${SHIM}`, shortCircuit: true };
  }
  return resolved;
};

export const load: LoadHook = async (url, context, next) => {
  if (!url.endsWith(SHIM)) return next(url, context);
  const real = JSON.stringify(url.slice(0, -SHIM.length));
  return {
    format: "module",
    shortCircuit: true,
    source: [
      `import ssh2 from ${real};`,
      "export default ssh2;",
      "export const { Client, Server, utils, AgentProtocol, BaseAgent, createAgent, HTTPAgent, HTTPSAgent } = ssh2;",
    ].join("\n"),
  };
};
