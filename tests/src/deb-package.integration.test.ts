// The Debian package as an operator gets it: `npm run package`'s builder, lintian, then
// installed into this machine's root with dpkg (CI machines are disposable), run, and purged.
// Needs root, dpkg's nodejs (>= 20.19), lintian and systemd-analyze (scripts/setup.sh
// --test-peers installs them). Refuses to run where the package is already installed.
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const root = path.resolve(import.meta.dirname, "../..");
const NAME = "arvados-dispatch-cloud";
const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
  version: string;
};

/** Everything the package installs or its scripts create, which purge must take away. */
const LEFTOVERS = [
  `/usr/bin/${NAME}`,
  "/usr/bin/arvados-cloudtest",
  `/usr/lib/${NAME}`,
  `/lib/systemd/system/${NAME}.service`,
  `/usr/share/doc/${NAME}`,
  `/usr/share/lintian/overrides/${NAME}`,
  `/etc/systemd/system/multi-user.target.wants/${NAME}.service`,
  `/etc/systemd/system/${NAME}.service`,
  `/var/lib/systemd/deb-systemd-helper-enabled/${NAME}.service.dsh-also`,
  `/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/${NAME}.service`,
  `/var/lib/systemd/deb-systemd-helper-masked/${NAME}.service`,
];

function run(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, cwd: tmpdir() });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function installed(): boolean {
  return run("dpkg-query", ["-W", "-f=${Status}", NAME]).stdout.includes("installed");
}

/** Direct devDependencies of every workspace package that none has as a dependency. */
function devOnlyDependencies(): Set<string> {
  const dirs = ["", "tests", "bench", "tools"].map((d) => path.join(root, d));
  for (const group of ["packages", "apps"]) {
    for (const d of readdirSync(path.join(root, group))) dirs.push(path.join(root, group, d));
  }
  const dev = new Set<string>();
  const prod = new Set<string>();
  for (const dir of dirs) {
    const file = path.join(dir, "package.json");
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, "utf8")) as Record<string, Record<string, string>>;
    for (const n of Object.keys(pkg["devDependencies"] ?? {})) dev.add(n);
    for (const n of Object.keys(pkg["dependencies"] ?? {})) prod.add(n);
  }
  for (const n of prod) dev.delete(n);
  return dev;
}

describe("the arvados-dispatch-cloud Debian package", () => {
  let dir: string;
  let deb: string;
  const configExisted = existsSync("/etc/arvados/config.yml");

  beforeAll(() => {
    if (process.getuid?.() !== 0) throw new Error("installing the package needs root");
    if (installed()) throw new Error(`${NAME} is already installed here: not replacing it`);
    dir = mkdtempSync(path.join(tmpdir(), "deb-package-test-"));
    const out = execFileSync(process.execPath, [path.join(root, "packaging/build-deb.mjs"), dir], {
      cwd: root,
      encoding: "utf8",
    });
    deb = path.join(dir, `${NAME}_${version}_all.deb`);
    if (!existsSync(deb))
      throw new Error(`the build wrote no ${deb}:
${out}`);
  });

  afterAll(() => {
    // Even after a failure: the machine goes back to how it was.
    if (installed()) run("dpkg", ["--purge", NAME]);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test("metadata: name, version from package.json, architecture all, depends on Node ≥ 20.19 and adduser", () => {
    const fields = run("dpkg-deb", ["-f", deb, "Package", "Version", "Architecture", "Depends"]);
    expect(fields.stdout).toBe(
      `Package: ${NAME}\nVersion: ${version}\nArchitecture: all\nDepends: nodejs (>= 20.19), adduser\n`,
    );
    expect(run("dpkg-deb", ["-I", deb]).stdout).not.toContain("conffiles");
  });

  test("files: the bundle, the launchers, the unit; no sources, tests or dev dependencies", () => {
    const files = run("dpkg-deb", ["-c", deb])
      .stdout.trim()
      .split("\n")
      .map((l) => l.split(/\s+/).slice(5).join(" ").replace(/^\./, ""));
    for (const want of [
      `/usr/bin/${NAME}`,
      "/usr/bin/arvados-cloudtest",
      `/usr/lib/${NAME}/${NAME}.mjs`,
      `/usr/lib/${NAME}/arvados-cloudtest.mjs`,
      `/usr/lib/${NAME}/crunch-run.cjs`,
      `/usr/lib/${NAME}/dashboard/index.html`,
      `/usr/lib/${NAME}/dashboard/dashboard.js`,
      `/lib/systemd/system/${NAME}.service`,
      `/usr/share/doc/${NAME}/copyright`,
      `/usr/share/doc/${NAME}/changelog.gz`,
      `/usr/share/doc/${NAME}/examples/ec2.yml`,
      `/usr/share/doc/${NAME}/examples/grafana-dispatch-cloud.json`,
    ]) {
      expect(files).toContain(want);
    }
    expect(
      files.filter((f) =>
        /\.(c|m)?ts$|\.map$|\.node$|node_modules|\.test\.|\/tests?\/|^\/etc\//.test(f),
      ),
    ).toEqual([]);

    // The copyright file lists every bundled npm package (`  name version: licence`).
    const copyright = execFileSync(
      "sh",
      [
        "-c",
        `dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/share/doc/${NAME}/copyright`,
        "sh",
        deb,
      ],
      { encoding: "utf8" },
    );
    const bundled = [...copyright.matchAll(/^ {2}(\S+) \S+: /gm)].map((m) => m[1]);
    expect(bundled).toContain("ssh2");
    expect(bundled).toContain("@aws-sdk/client-ec2");
    const devOnly = devOnlyDependencies();
    expect(devOnly.has("vitest")).toBe(true);
    expect(bundled.filter((n) => n !== undefined && devOnly.has(n))).toEqual([]);
    // Native modules left out on purpose (the demo's SQLite, ssh2's optional helpers).
    expect(
      bundled.filter((n) => ["better-sqlite3", "cpu-features", "bindings"].includes(n ?? "")),
    ).toEqual([]);
  });

  test("lintian: no errors or warnings", () => {
    const r = run("lintian", ["--fail-on", "error,warning", "--no-tag-display-limit", deb]);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(0);
  });

  test("installed with dpkg: runs, checks a config, serves, and its unit verifies", () => {
    const install = run("dpkg", ["-i", deb]);
    expect(install).toMatchObject({ code: 0 });
    // Enabled by nobody: Arvados's install guide enables it once the config is in place.
    expect(existsSync(`/etc/systemd/system/multi-user.target.wants/${NAME}.service`)).toBe(false);

    expect(run(NAME, ["-version"])).toEqual({
      code: 0,
      stdout: `/usr/bin/${NAME} ${version} (node ${execFileSync("/usr/bin/node", ["--version"], { encoding: "utf8" }).trim()})\n`,
      stderr: "",
    });
    expect(run(NAME, ["-bogus"]).code).toBe(64);
    expect(run(NAME, ["config-check", "-config", path.join(root, "examples/ec2.yml")])).toEqual({
      code: 0,
      // On EC2 the VMs run Arvados's crunch-run; the package's bundled runner is where to name
      // it, were it wanted.
      stdout: `crunch-run on the VMs: "crunch-run" already on the image (Containers.CrunchRunCommand), nothing deployed: DeployRunnerBinary is /proc/self/exe (the default), which in Arvados deploys the dispatcher's own crunch-run; this dispatcher has none to deploy on a real cloud (to deploy the bundled runner anyway, set DeployRunnerBinary to /usr/lib/${NAME}/crunch-run.cjs)\n`,
      stderr: "",
    });
    expect(
      run("arvados-cloudtest", ["-help"]).stderr + run("arvados-cloudtest", ["-help"]).stdout,
    ).toContain("Usage: cloudtest");

    // The service's own system user: no login, no home; with the one capability its unit gives
    // it, it reads a config only root may read (as Arvados's guide keeps it); without it, not.
    const account = run("getent", ["passwd", NAME]).stdout.trim().split(":");
    expect(account[5]).toBe("/nonexistent");
    expect(account[6]).toMatch(/\/(nologin|false)$/);
    const secret = mkdtempSync(path.join(tmpdir(), "deb-config-"));
    try {
      chmodSync(secret, 0o700);
      const conf = path.join(secret, "config.yml");
      copyFileSync(path.join(root, "examples/ec2.yml"), conf);
      chmodSync(conf, 0o600);
      const asService = (caps: string[]) =>
        run("setpriv", [
          `--reuid=${NAME}`,
          `--regid=${NAME}`,
          "--clear-groups",
          ...caps,
          NAME,
          "config-check",
          "-config",
          conf,
        ]);
      expect(
        asService(["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]).code,
      ).toBe(0);
      const denied = asService([]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/permission denied/i);
    } finally {
      rmSync(secret, { recursive: true, force: true });
    }

    const verify = run("systemd-analyze", ["verify", `/lib/systemd/system/${NAME}.service`]);
    expect(verify.stderr.split("\n").filter((l) => l.includes(NAME))).toEqual([]);
    expect(verify.code).toBe(0);

    // The service from the package, on the stub cloud: listens, answers its health check
    // (which needs the packaged runner), serves its dashboard (which needs the packaged files),
    // stops cleanly; the start-up measurement does that.
    const started = run(process.execPath, [path.join(root, "packaging/measure-startup.mjs"), "1"]);
    expect(started).toMatchObject({ code: 0, stderr: "" });
    expect(started.stdout).toMatch(new RegExp(`^/usr/bin/${NAME}: listening after \\d+ ms`));
  });

  test("purged: nothing is left, not even an admin's enablement; the config was never made", () => {
    expect(run("systemctl", ["enable", NAME]).code).toBe(0);
    expect(existsSync(`/etc/systemd/system/multi-user.target.wants/${NAME}.service`)).toBe(true);
    const purge = run("dpkg", ["--purge", NAME]);
    expect(purge).toMatchObject({ code: 0 });
    expect(installed()).toBe(false);
    expect(LEFTOVERS.filter((p) => existsSync(p) || isLink(p))).toEqual([]);
    expect(run("getent", ["passwd", NAME]).code, "the system user is gone").not.toBe(0);
    expect(run("getent", ["group", NAME]).code, "and its group").not.toBe(0);
    expect(existsSync("/etc/arvados/config.yml")).toBe(configExisted);
  });
});

function isLink(p: string): boolean {
  return run("test", ["-L", p]).code === 0;
}
