// Bundles what the Debian package runs into plain JavaScript: the service
// (apps/dispatch-cloud/src/package-main.ts) and cloudtest, sharing their common code in chunks,
// plus the one-file runner apps/crunch-run builds. No TypeScript sources, tests or dev
// dependencies go in: only what these entry points import.
//
// Left out on purpose:
// - the embedded container API (better-sqlite3, native): `demo` and `container-api` are replaced
//   by commands that say to run them from a checkout;
// - ssh2's optional native helpers (cpu-features, sshcrypto.node): never built here
//   (allowBuilds), and ssh2 falls back to pure JavaScript when they are missing.
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(fileURLToPath(import.meta.url), "../..");

/** The package's demo and container-api commands in place of the real ones. */
const withoutDemo = {
  name: "without-demo",
  setup(b) {
    b.onResolve({ filter: /\/commands\/(demo|container-api)\.js$/ }, (args) => ({
      path: path.join(
        root,
        `apps/dispatch-cloud/src/commands/${path.basename(args.path, ".js")}-unavailable.ts`,
      ),
    }));
  },
};

/**
 * Writes the bundle into `outdir` and returns esbuild's metafile (which inputs went in).
 * @param {string} outdir
 */
export async function bundle(outdir) {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: {
      "arvados-dispatch-cloud": "apps/dispatch-cloud/src/package-main.ts",
      "arvados-cloudtest": "apps/cloudtest/src/cli.ts",
    },
    outdir,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    conditions: ["source"],
    // CommonJS dependencies use require(), __filename and __dirname; an ES module has none.
    banner: {
      js: [
        'import { createRequire as __bundleRequire } from "node:module";',
        'import { fileURLToPath as __bundlePath } from "node:url";',
        "const require = __bundleRequire(import.meta.url);",
        "const __bundleFilename = __bundlePath(import.meta.url);",
        'const __bundleDirname = __bundlePath(new URL(".", import.meta.url));',
      ].join(" "),
    },
    // Only where a module uses them undeclared (some ES modules declare their own).
    define: { __filename: "__bundleFilename", __dirname: "__bundleDirname" },
    external: ["cpu-features", "*.node"],
    plugins: [withoutDemo],
    minifySyntax: true,
    minifyWhitespace: true,
    legalComments: "none",
    metafile: true,
    logLevel: "warning",
  });
  // The entries keep their sources' `#!` line; node runs them by path, so it only misleads.
  for (const [file, out] of Object.entries(result.metafile.outputs)) {
    if (out.entryPoint === undefined) continue;
    const text = readFileSync(path.join(root, file), "utf8");
    if (text.startsWith("#!"))
      writeFileSync(path.join(root, file), text.slice(text.indexOf("\n") + 1));
  }
  copyFileSync(
    path.join(root, "apps/crunch-run/dist/crunch-run.cjs"),
    path.join(outdir, "crunch-run.cjs"),
  );
  // The dashboard's static files, which package-main.ts points the management API at.
  cpSync(path.join(root, "packages/http-api/src/dashboard"), path.join(outdir, "dashboard"), {
    recursive: true,
  });
  return result.metafile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = path.resolve(process.argv[2] ?? "dist/bundle");
  const meta = await bundle(out);
  const inputs = Object.keys(meta.inputs);
  console.log(`${out}: ${Object.keys(meta.outputs).length} files from ${inputs.length} inputs`);
}
