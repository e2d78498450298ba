#!/usr/bin/env node
// Standalone entry for demos and child-process tests:
//   container-api --listen 127.0.0.1:0 --db FILE --token-file FILE [--cluster-id zzzzz]
// The token is read from a file so it never appears in argv. Prints one JSON line
// {"url": "..."} on stdout once listening. Stopping is by signal (default handling): every
// answered change is already committed to the WAL, so nothing is lost.
import fs from "node:fs";
import { parseArgs } from "node:util";
import { startContainerApi } from "./server.js";

function fail(message: string): never {
  process.stderr.write(`container-api: ${message}\n`);
  process.exitCode = 2;
  throw new Error(message);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: "string", default: "127.0.0.1:0" },
      db: { type: "string" },
      "token-file": { type: "string" },
      "cluster-id": { type: "string", default: "zzzzz" },
      "max-dispatch-attempts": { type: "string", default: "10" },
    },
  });
  if (!values.db) fail("--db FILE is required (or ':memory:')");
  if (!values["token-file"]) fail("--token-file FILE is required");
  const token = fs.readFileSync(values["token-file"], "utf8").trim();
  if (!/^[A-Za-z0-9]+$/.test(token))
    fail(`${values["token-file"]}: token must be non-empty and alphanumeric`);
  const m = /^(.*):(\d+)$/.exec(values.listen);
  if (!m) fail(`--listen ${values.listen}: expected HOST:PORT`);
  const api = await startContainerApi({
    dbPath: values.db,
    systemRootToken: token,
    clusterId: values["cluster-id"],
    host: (m[1] ?? "").replace(/^\[|\]$/g, ""),
    port: Number(m[2]),
    maxDispatchAttempts: Number(values["max-dispatch-attempts"]),
  });
  process.stdout.write(`${JSON.stringify({ url: api.url })}\n`);
}

main().catch((e: unknown) => {
  if (process.exitCode === undefined) {
    process.stderr.write(`container-api: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
});
