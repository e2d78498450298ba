// `npm run package`: builds dist/arvados-dispatch-cloud_<version>_all.deb with dpkg-deb from
// the production bundle (packaging/bundle.mjs). Architecture `all`: nothing native is inside;
// the package depends on Debian's (or NodeSource's) nodejs instead of carrying a runtime.
//
//   /usr/bin/arvados-dispatch-cloud       the service (bin/arvados-dispatch-cloud, the launcher)
//   /usr/bin/arvados-cloudtest            `arvados-server cloudtest` of Arvados
//   /usr/lib/arvados-dispatch-cloud/      the bundle, the runner deployed to VMs, the dashboard
//   /lib/systemd/system/arvados-dispatch-cloud.service
//   /usr/share/doc/arvados-dispatch-cloud/ copyright (with every bundled package's licence),
//                                          changelog, operations guide, example configs and
//                                          the Grafana dashboard
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { bundle } from "./bundle.mjs";

const root = path.resolve(fileURLToPath(import.meta.url), "../..");
const here = path.join(root, "packaging");
const NAME = "arvados-dispatch-cloud";
const MAINTAINER = "dispatch-cloud developers <dispatch-cloud@example.org>";
const LIB = `usr/lib/${NAME}`;
const DOC = `usr/share/doc/${NAME}`;

/** Where every bundled npm package lives: `…/node_modules/<name>` or `…/node_modules/@s/<name>`. */
function packageRoot(file) {
  const m = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(file);
  return m === null ? null : m[1];
}

const LICENSE_FILES = /^(licen[cs]e|copying)(\.(md|txt|markdown))?$/i;

/**
 * A licence file as the copyright file quotes it. Debian ships the Apache licence in
 * /usr/share/common-licenses, so its text is referred to there; the package's own copyright
 * lines are kept.
 */
function licenseText(raw) {
  const text = raw.replace(/\r\n?/g, "\n").trim();
  if (!/Apache License\s+Version 2\.0, January 2004/.test(text)) return text;
  const notices = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^Copyright\b/.test(l) && !l.includes("[yyyy]"));
  return [
    ...notices,
    "Licensed under the Apache License, Version 2.0: see /usr/share/common-licenses/Apache-2.0.",
  ].join("\n");
}

/** The npm packages in the bundle, with their licences, for the copyright file. */
function bundledPackages(metafile) {
  const roots = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const r = packageRoot(path.resolve(root, input));
    if (r !== null) roots.add(r);
  }
  // The runner is bundled by apps/crunch-run's own build; esbuild names each input it took in
  // a `// path` comment.
  const runnerDir = path.join(root, "apps/crunch-run");
  const runner = readFileSync(path.join(runnerDir, "dist/crunch-run.cjs"), "utf8");
  for (const m of runner.matchAll(/^\/\/ (\S*node_modules\/\S+)$/gm)) {
    const r = packageRoot(path.resolve(runnerDir, m[1]));
    if (r !== null) roots.add(r);
  }
  const seen = new Map();
  for (const dir of roots) {
    const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
    const license =
      typeof pkg.license === "string"
        ? pkg.license
        : (pkg.licenses ?? []).map((l) => l.type).join(" OR ") || "see its text";
    const file = readdirSync(dir).find((f) => LICENSE_FILES.test(f));
    const text =
      file === undefined ? null : licenseText(readFileSync(path.join(dir, file), "utf8"));
    seen.set(`${pkg.name}@${pkg.version}`, { name: pkg.name, version: pkg.version, license, text });
  }
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function copyright(packages) {
  const lines = [
    "arvados-dispatch-cloud: dispatch-cloud, a TypeScript implementation of the Arvados",
    "cloud dispatcher.",
    "",
    "Copyright: the dispatch-cloud authors",
    "License: AGPL-3.0, the GNU Affero General Public License, version 3",
    "  (https://www.gnu.org/licenses/agpl-3.0.html)",
    "",
    `The JavaScript in /${LIB} also contains these packages from the npm`,
    "registry, each under its own licence (texts below):",
    "",
    ...packages.map((p) => `  ${p.name} ${p.version}: ${p.license}`),
    "",
    // Debian has no copy of the AGPL in /usr/share/common-licenses: quote it whole.
    "-- dispatch-cloud (AGPL-3.0)",
    "",
    licenseText(readFileSync(path.join(root, "LICENSE"), "utf8")),
  ];
  for (const p of packages) {
    lines.push("", `-- ${p.name} ${p.version} (${p.license})`, "");
    lines.push(
      p.text ?? `  No licence file is shipped with it; its package.json says ${p.license}.`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function changelog(version, date) {
  return [
    `${NAME} (${version}) unstable; urgency=medium`,
    "",
    `  * dispatch-cloud ${version}.`,
    "",
    ` -- ${MAINTAINER}  ${date.toUTCString().replace("GMT", "+0000")}`,
    "",
  ].join("\n");
}

/** The launcher with the package's paths in place of the checkout's. */
function packagedLauncher() {
  const text = readFileSync(path.join(root, "bin/arvados-dispatch-cloud"), "utf8");
  const line = /^my \(\$node, \$entry\) = .*# package: replaced$/m;
  if (!line.test(text))
    throw new Error("bin/arvados-dispatch-cloud: the line to replace is missing");
  return text.replace(line, `my ($node, $entry) = ('/usr/bin/node', '/${LIB}/${NAME}.mjs');`);
}

function walk(dir, visit) {
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, visit);
    else visit(p);
  }
}

/**
 * Builds the package; returns its path and the bundled packages.
 * @param {{ outDir?: string }} [options]
 */
export async function buildDeb(options = {}) {
  const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  const outDir = options.outDir ?? path.join(root, "dist");
  mkdirSync(outDir, { recursive: true });
  const stage = path.join(outDir, `.${NAME}-stage`);
  rmSync(stage, { recursive: true, force: true });
  const put = (rel, content, mode = 0o644) => {
    const p = path.join(stage, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, content);
    chmodSync(p, mode);
  };
  try {
    const metafile = await bundle(path.join(stage, LIB));
    const packages = bundledPackages(metafile);
    // The commit's time, so that the same commit builds the same package.
    const epoch = Number(
      process.env["SOURCE_DATE_EPOCH"] ??
        execFileSync("git", ["log", "-1", "--format=%ct"], { cwd: root, encoding: "utf8" }).trim(),
    );

    put(`usr/bin/${NAME}`, packagedLauncher(), 0o755);
    put("usr/bin/arvados-cloudtest", readFileSync(path.join(here, "arvados-cloudtest")), 0o755);
    put(`lib/systemd/system/${NAME}.service`, readFileSync(path.join(here, `${NAME}.service`)));
    put(`${DOC}/copyright`, copyright(packages));
    put(`${DOC}/changelog.gz`, gzipSync(changelog(version, new Date(epoch * 1000)), { level: 9 }));
    put(
      `${DOC}/operations.md.gz`,
      gzipSync(readFileSync(path.join(root, "docs/operations.md")), { level: 9 }),
    );
    for (const f of readdirSync(path.join(root, "examples")).filter((n) => n.endsWith(".yml"))) {
      put(`${DOC}/examples/${f}`, readFileSync(path.join(root, "examples", f)));
    }
    put(
      `${DOC}/examples/grafana-dispatch-cloud.json`,
      readFileSync(path.join(root, "examples/grafana/dispatch-cloud.json")),
    );
    put(
      `usr/share/lintian/overrides/${NAME}`,
      readFileSync(path.join(here, "debian/lintian-overrides")),
    );

    // Control area: sizes and checksums of what is staged so far.
    const files = [];
    walk(stage, (p) => files.push(p));
    let bytes = 0;
    const md5sums = files.map((p) => {
      const data = readFileSync(p);
      bytes += data.length;
      return `${createHash("md5").update(data).digest("hex")}  ${path.relative(stage, p)}\n`;
    });
    const control = readFileSync(path.join(here, "debian/control"), "utf8")
      .replace("@VERSION@", version)
      .replace("@MAINTAINER@", MAINTAINER)
      .replace("@INSTALLED_SIZE@", String(Math.ceil(bytes / 1024)));
    put("DEBIAN/control", control);
    put("DEBIAN/md5sums", md5sums.join(""));
    for (const script of ["postinst", "prerm", "postrm"]) {
      put(`DEBIAN/${script}`, readFileSync(path.join(here, "debian", script)), 0o755);
    }
    // Nothing in the bundle is executed on this host: node runs it by path, and the runner is
    // only read, to be copied to each VM. Directories 0755 whatever the umask.
    execFileSync("find", [
      path.join(stage, LIB),
      "-type",
      "f",
      "-exec",
      "chmod",
      "0644",
      "{}",
      "+",
    ]);
    execFileSync("find", [stage, "-type", "d", "-exec", "chmod", "0755", "{}", "+"]);

    const deb = path.join(outDir, `${NAME}_${version}_all.deb`);
    execFileSync("dpkg-deb", ["--root-owner-group", "-Zxz", "--build", stage, deb], {
      env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) },
      stdio: ["ignore", "ignore", "inherit"],
    });
    return { deb, version, packages };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Optional argument: the directory to write the package to (default dist/).
  const outDir = process.argv[2];
  const { deb, packages } = await buildDeb(
    outDir === undefined ? {} : { outDir: path.resolve(outDir) },
  );
  if (!existsSync(deb)) throw new Error(`${deb} was not written`);
  const size = statSync(deb).size;
  console.log(
    `${path.relative(process.cwd(), deb)}: ${(size / 1048576).toFixed(1)} MiB, ${packages.length} bundled npm packages`,
  );
}
