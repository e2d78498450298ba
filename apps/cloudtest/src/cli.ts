#!/usr/bin/env node
// The process around main(): argv, streams, environment, and the signals that must still lead
// to the test instance being destroyed.
import readline from "node:readline";
import { text } from "node:stream/consumers";
import { main } from "./main.js";

// The pinned EC2 SDK warns on every start that its releases after January 2027 will need
// Node 22. We pin the release we run, so the notice tells an operator nothing.
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";

const interrupt = new AbortController();
const force = new AbortController();
let signals = 0;
const onSignal = (sig: NodeJS.Signals): void => {
  signals++;
  if (signals === 1) {
    process.stderr.write(
      `\ncloudtest: got ${sig}: stopping the test and destroying the test instance (send it again to exit without waiting)\n`,
    );
    interrupt.abort(new Error(`got ${sig}`));
  } else {
    process.stderr.write(`\ncloudtest: got ${sig} again: no longer waiting for the destroy\n`);
    force.abort(new Error(`got ${sig} twice`));
  }
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

function waitForEnter(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const rl = readline.createInterface({ input: process.stdin });
    const done = (err?: Error): void => {
      signal.removeEventListener("abort", onAbort);
      rl.close();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => done(new Error("interrupted"));
    signal.addEventListener("abort", onAbort, { once: true });
    rl.once("line", () => done());
    rl.once("close", () => done());
  });
}

const code = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  readStdin: () => text(process.stdin),
  waitForEnter,
  pid: process.pid,
  interrupt: interrupt.signal,
  force: force.signal,
});
// Drivers' HTTP clients may keep sockets open; flush the output and leave with our status.
await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
await new Promise<void>((resolve) => process.stderr.write("", () => resolve()));
process.exit(code);
