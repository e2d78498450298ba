import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";

// The demo as a user runs it: the built CLI in its own process, as `npm run demo` and
// `npm start` do.

const root = path.resolve(import.meta.dirname, "../../../..");
const cli = path.join(root, "apps/dispatch-cloud/dist/cli.js");
const dirs: string[] = [];

beforeAll(() => {
  execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-b", "apps/dispatch-cloud"], {
    cwd: root,
    stdio: "pipe",
  });
  if (!fs.existsSync(path.join(root, "apps/crunch-run/dist/crunch-run.cjs"))) {
    execFileSync(process.execPath, ["build.mjs"], { cwd: path.join(root, "apps/crunch-run") });
  }
});
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "dispatch-cloud-demo-cli-"));
  dirs.push(d);
  return d;
}

function demo(dataDir: string) {
  const r = spawnSync(process.execPath, [cli, "demo", "--data-dir", dataDir], {
    cwd: root,
    encoding: "utf8",
    env: { PATH: process.env["PATH"] ?? "" },
    timeout: 90_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("dispatch-cloud demo as a child process", () => {
  test("runs hello world to Complete, then a second run finds the first one's data", () => {
    const dir = tmpDir();
    const first = demo(dir);
    if (first.code !== 0) console.error(first.stdout);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: "" });
    expect(first.stdout).toContain("(generated now)");
    expect(first.stdout).toContain("Final state: Complete, exit code 0");
    expect(first.stdout).toContain("  Hello, Crunch!\n");
    const uuid = /^container (\S+)$/m.exec(first.stdout)?.[1];
    expect(uuid).toMatch(/^zzzzz-dz642-/);
    // Secrets stay in the config file, never on the terminal.
    const cfg = fs.readFileSync(path.join(dir, "config.yml"), "utf8");
    const token = /SystemRootToken: "(\w+)"/.exec(cfg)?.[1];
    expect(token).toMatch(/^\w{32,}$/);
    expect(first.stdout).not.toContain(token!);

    const second = demo(dir);
    if (second.code !== 0) console.error(second.stdout);
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: "" });
    expect(second.stdout).toContain("(found from an earlier run)");
    expect(second.stdout).toContain("Final state: Complete, exit code 0");
    // The same database: the first run's container is still there.
    expect(second.stdout).toContain(
      `  database:        1 container from earlier runs (latest ${uuid}, Complete)\n`,
    );
  });

  // A dozen processes (the demo, bash, curl, the CLI): give a busy machine time.
  test("--keep-running serves until SIGINT; the printed commands submit and cancel containers; nothing is left running", async () => {
    const dir = tmpDir();
    const child = spawn(process.execPath, [cli, "demo", "--keep-running", "--data-dir", dir], {
      cwd: root,
      env: { PATH: process.env["PATH"] ?? "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on("exit", (code) => resolve(code)),
    );
    try {
      await vi.waitFor(() => expect(out).toContain("Running; stop with Ctrl-C."), {
        timeout: 30_000,
        interval: 100,
      });
      // Run what we told the user to run, from another directory, as a user would.
      const printed = (prefix: string): string => {
        const line = out.split("\n").find((l) => l.startsWith(`  ${prefix}`));
        if (line === undefined) throw new Error(`no printed line starting ${prefix}`);
        return line.replace(/ +# .*$/, "");
      };
      const setup = `${printed("cd ")}\n${printed("export ARVADOS_CONFIG=")}`;
      const sh = (script: string) => {
        // stdin not a socket, or bash takes itself for a remote shell and reads ~/.bashrc.
        const r = spawnSync("bash", ["-c", `${setup}\n${script}`], {
          cwd: os.tmpdir(),
          encoding: "utf8",
          env: { PATH: process.env["PATH"] ?? "" },
          stdio: ["ignore", "pipe", "pipe"],
        });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr };
      };
      const withUuid = (prefix: string, uuid: string) => printed(prefix).replace("UUID", uuid);

      // The one curl example for people without the CLI submits the hello-world container.
      const curl = out.slice(out.indexOf("  token="), out.indexOf("\n\nRunning;"));
      const posted = sh(curl);
      expect(posted.stderr).toBe("");
      expect((JSON.parse(posted.stdout) as { container_uuid: string }).container_uuid).toMatch(
        /^zzzzz-dz642-\w{15}$/,
      );

      // The printed submit, with a long command instead of echo and without --wait.
      const sleep = `600.${process.pid}`;
      const submitted = sh(
        printed("bin/dispatch-cloud submit").replace(
          "--wait -- echo 'Hello, Crunch!'",
          `-- sleep ${sleep}`,
        ),
      );
      expect({ code: submitted.code, stderr: submitted.stderr }).toEqual({ code: 0, stderr: "" });
      const uuid = submitted.stdout.trim();
      expect(uuid).toMatch(/^zzzzz-dz642-\w{15}$/);
      await vi.waitFor(
        () => {
          const listed = sh(printed("bin/dispatch-cloud instance list"));
          expect(listed.stdout).toMatch(new RegExp(`\trunning\t.*\t${uuid}\n`));
          expect(sleeping(sleep)).toBe(true);
        },
        { timeout: 30_000, interval: 200 },
      );

      // Cancelled as a user would: the dispatcher stops it and it ends Cancelled.
      const cancelled = sh(withUuid("bin/dispatch-cloud container cancel", uuid));
      expect(cancelled.stdout).toContain(
        `container ${uuid} is Running: the dispatcher stops it and it ends Cancelled\n`,
      );
      await vi.waitFor(
        () => {
          expect(sh(withUuid("bin/dispatch-cloud container get", uuid)).stdout).toMatch(
            /\nstate: +Cancelled/,
          );
          expect(sleeping(sleep)).toBe(false);
        },
        { timeout: 30_000, interval: 200 },
      );

      child.kill("SIGINT");
      expect(await exited).toBe(0);
      expect(out).toContain("Stopped.\n");
      expect(err).toBe("");
      expect(sleeping(sleep)).toBe(false);
      expect(out).not.toContain(
        /SystemRootToken: "(\w+)"/.exec(
          fs.readFileSync(path.join(dir, "config.yml"), "utf8"),
        )?.[1] ?? "",
      );
    } catch (e) {
      console.error(out, err, fs.readFileSync(path.join(dir, "dispatcher.log"), "utf8"));
      throw e;
    } finally {
      // Even after a failure, stop it the clean way so it takes its runner with it.
      if (child.exitCode === null) {
        child.kill("SIGINT");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      }
    }
  }, 120_000);
});

/** Whether a live `sleep <arg>` process exists. */
function sleeping(arg: string): boolean {
  const want = `sleep\0${arg}\0`;
  return fs.readdirSync("/proc").some((e) => {
    if (!/^\d+$/.test(e)) return false;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, "utf8") !== want) return false;
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
      return false;
    }
  });
}
