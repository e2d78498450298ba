import { SshExecutorError } from "../errors.js";

/** Wait for `p` to reject, and return its error; fails unless it is an SshExecutorError. */
export async function rejection(p: Promise<unknown>): Promise<SshExecutorError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!SshExecutorError.is(err))
    throw new Error(`expected an SshExecutorError, got ${String(err)}`);
  return err;
}
