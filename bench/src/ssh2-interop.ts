// Works around @dispatch-cloud/ssh-executor's `./testing` build failing under plain Node:
// its fake-server imports `{ Server, utils }` from "ssh2", names that Node's CommonJS export
// detection does not find (vitest resolves them differently, so that package's tests pass).
// Until it imports ssh2's default export, this hook gives its dist a small ESM facade.
// Call registerSsh2Interop() first, then load the testing entry with a dynamic import().
import { register } from "node:module";

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === "ssh2" && context.parentURL?.includes("/ssh-executor/dist/")) {
    const real = await next(specifier, context);
    const src = "import m from " + JSON.stringify(real.url) +
      "; export const { Client, Server, utils } = m; export default m;";
    return { url: "data:text/javascript," + encodeURIComponent(src), shortCircuit: true };
  }
  return next(specifier, context);
}
`;
export function registerSsh2Interop(): void {
  register(`data:text/javascript,${encodeURIComponent(hooks)}`);
}
