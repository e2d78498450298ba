#!/usr/bin/env node
// Fails when an import breaks the package dependency direction (docs/architecture.md), when a
// library does what only apps may do, or when the workspace package graph has a cycle.
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const SCOPE = "@dispatch-cloud/";

// The shared vocabulary (like Arvados's sdk/go/arvados): every package may import it, and it
// imports no workspace package itself.
const GROUND_FLOOR = "arvados-types";

// Which workspace packages each library's source may import, besides the ground floor. Apps may
// import any library.
const allowed = {
  [GROUND_FLOOR]: [],
  config: [],
  "cloud-driver-api": [],
  "ssh-executor": [],
  "arvados-client": [],
  "container-api": [],
  "driver-stub": ["cloud-driver-api"],
  "driver-loopback": ["cloud-driver-api"],
  "driver-ec2": ["cloud-driver-api"],
  "driver-azure": ["cloud-driver-api"],
  "driver-gce": ["cloud-driver-api"],
  "worker-pool": ["cloud-driver-api"],
  "container-queue": ["arvados-client"],
  scheduler: [],
  "http-api": [],
  "cluster-lock": [],
};

// Third-party SDKs stay in the packages that own them.
const sdkOwners = [
  { prefix: "@aws-sdk/", owners: ["driver-ec2"] },
  { prefix: "@azure/", owners: ["driver-azure"] },
  { prefix: "@google-cloud/", owners: ["driver-gce"] },
  { prefix: "ssh2", owners: ["ssh-executor", "driver-stub", "driver-loopback"] },
  { prefix: "express", owners: ["http-api", "container-api"] },
  { prefix: "better-sqlite3", owners: ["container-api"] },
  // The cluster lock's database connection: nothing else, apps included, talks to PostgreSQL.
  { prefix: "pg", exact: true, everywhere: true, owners: ["cluster-lock"] },
  // The browser driver drives the dashboard's test; nothing that ships imports it.
  { prefix: "playwright-core", exact: true, everywhere: true, owners: [] },
];

// Libraries take values from their callers; only apps touch the process.
const processRules = [
  { re: /\bprocess\.env\b/, what: "reads process.env" },
  { re: /\bprocess\.exit\s*\(/, what: "calls process.exit" },
  { re: /\bprocess\.on\s*\(\s*["']SIG/, what: "installs a signal handler" },
  { re: /\bconsole\.(log|error|warn|info|debug)\s*\(/, what: "writes to the console" },
];

const importRe =
  /(?:^|[\s;])(?:import|export)\s[^"'`]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s*["']([^"']+)["']/gm;

function listFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "dist") continue;
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

const problems = [];
const graph = new Map();

function workspaceDirs(kind) {
  const base = path.join(root, kind);
  if (!fs.existsSync(base)) return [];
  return fs
    .readdirSync(base)
    .filter((n) => fs.existsSync(path.join(base, n, "package.json")))
    .map((n) => ({ kind, name: n, dir: path.join(base, n) }));
}

for (const { kind, name, dir } of [...workspaceDirs("packages"), ...workspaceDirs("apps")]) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const declared = new Set([
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.devDependencies ?? {}),
  ]);
  graph.set(
    name,
    Object.keys(pkg.dependencies ?? {})
      .filter((d) => d.startsWith(SCOPE))
      .map((d) => d.slice(SCOPE.length)),
  );
  if (kind === "packages" && !(name in allowed)) {
    problems.push(
      `packages/${name}: not listed in scripts/check-deps.mjs; add its allowed imports`,
    );
  }
  for (const file of listFiles(path.join(dir, "src"))) {
    const rel = path.relative(root, file);
    const isTest = file.endsWith(".test.ts") || file.includes(`${path.sep}testing${path.sep}`);
    const text = fs.readFileSync(file, "utf8");
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec || spec.startsWith(".") || spec.startsWith("node:")) continue;
      if (name === GROUND_FLOOR && !isTest) {
        problems.push(`${rel}: ${GROUND_FLOOR} imports nothing but Node's built-ins, not ${spec}`);
        continue;
      }
      const bare = spec.startsWith("@")
        ? spec.split("/").slice(0, 2).join("/")
        : spec.split("/")[0];
      if (spec.startsWith(SCOPE)) {
        const target = bare.slice(SCOPE.length);
        if (!declared.has(bare) && target !== name) {
          problems.push(`${rel}: imports ${spec} but package.json does not declare ${bare}`);
        }
        const mayImport =
          target === name ||
          (target === GROUND_FLOOR && name !== GROUND_FLOOR) ||
          allowed[name]?.includes(target);
        if (kind === "packages" && !isTest && !mayImport) {
          problems.push(
            `${rel}: ${name} may not import ${spec} (allowed: ${(allowed[name] ?? []).join(", ") || "none"})`,
          );
        }
        continue;
      }
      for (const { prefix, exact, everywhere, owners } of sdkOwners) {
        if (
          (bare === prefix || (!exact && bare.startsWith(prefix))) &&
          (kind === "packages" || everywhere) &&
          !owners.includes(name) &&
          !isTest
        ) {
          const where = owners.length > 0 ? owners.join(" or ") : "tests only";
          problems.push(`${rel}: ${spec} belongs in ${where}, not ${name}`);
        }
      }
    }
    if (kind === "packages" && !isTest) {
      for (const { re, what } of processRules) {
        if (re.test(text)) problems.push(`${rel}: a library ${what}; only apps may`);
      }
    }
  }
}

// Cycle check over declared workspace dependencies.
const state = new Map();
function visit(node, stack) {
  if (state.get(node) === "done") return;
  if (state.get(node) === "active") {
    problems.push(`dependency cycle: ${[...stack.slice(stack.indexOf(node)), node].join(" -> ")}`);
    return;
  }
  state.set(node, "active");
  for (const dep of graph.get(node) ?? []) visit(dep, [...stack, node]);
  state.set(node, "done");
}
for (const node of graph.keys()) visit(node, []);

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`check-deps: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(
  `check-deps: ${graph.size} workspace packages, imports follow the dependency direction, no cycles`,
);
