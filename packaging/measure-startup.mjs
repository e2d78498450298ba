// Start-up time of the service: from exec to the `listening` log line (the management API
// is up, READY=1 would go to systemd), on the stub cloud with an unreachable controller.
//
//   node packaging/measure-startup.mjs [RUNS] [COMMAND...]
//
// COMMAND defaults to the installed package's /usr/bin/arvados-dispatch-cloud; give
// bin/arvados-dispatch-cloud to measure a checkout. Each run also checks that the service
// answers its health check, serves its dashboard, and stops cleanly (exit 0). Prints the medians of the wall time and of
// the CPU time the process had used by then (from /proc; steadier on a busy machine).
import { generateKeyPairSync } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";

const runs = Number(process.argv[2] ?? "7");
const command = process.argv.slice(3);
const [program, ...args] = command.length > 0 ? command : ["/usr/bin/arvados-dispatch-cloud"];

async function freePort() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

const MANAGEMENT_TOKEN = "measurestartupmanagementtoken0123456789";
const dir = mkdtempSync(path.join(tmpdir(), "measure-startup-"));
const { privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "pkcs1", format: "pem" },
});

/** CPU time (user + system) a process has used, in ms; Linux counts it in 1/100 s. */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function once() {
  const port = await freePort();
  const config = path.join(dir, "config.yml");
  writeFileSync(
    config,
    JSON.stringify({
      Clusters: {
        zzzzz: {
          SystemRootToken: "measurestartupsystemroottoken0123456789",
          ManagementToken: MANAGEMENT_TOKEN,
          Services: {
            Controller: { ExternalURL: "http://127.0.0.1:9/" },
            DispatchCloud: { InternalURLs: { [`http://127.0.0.1:${port}/`]: {} } },
          },
          Containers: {
            DispatchPrivateKey: privateKey,
            CloudVMs: { Driver: "stub", ImageID: "image-1", DriverParameters: {} },
          },
          InstanceTypes: { small: { ProviderType: "p.small", VCPUs: 1, RAM: "2GiB", Price: 0.1 } },
        },
      },
    }),
  );
  const start = process.hrtime.bigint();
  const child = spawn(program, [...args, "-config", config], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  for await (const line of readline.createInterface({ input: child.stderr })) {
    if (line.includes('"msg":"listening"')) break;
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const cpu = cpuMs(child.pid);
  // Healthy too: the health check needs the runner the dispatcher deploys.
  const ping = await fetch(`http://127.0.0.1:${port}/_health/ping`, {
    headers: { Authorization: `Bearer ${MANAGEMENT_TOKEN}` },
  });
  if (ping.status !== 200) throw new Error(`/_health/ping: ${ping.status} ${await ping.text()}`);
  // The dashboard too: its files are found where this installation keeps them.
  const page = await fetch(`http://127.0.0.1:${port}/dashboard/`);
  if (page.status !== 200 || !(await page.text()).includes("dashboard.js")) {
    throw new Error(`/dashboard/: ${page.status}`);
  }
  child.kill("SIGTERM");
  if ((await exited) !== 0) throw new Error(`${program} did not stop cleanly`);
  return { ms, cpu };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const samples = [];
  for (let i = 0; i < runs; i++) samples.push(await once());
  const wall = samples.map((s) => s.ms);
  console.log(
    `${[program, ...args].join(" ")}: listening after ${median(wall).toFixed(0)} ms ` +
      `(${Math.min(...wall).toFixed(0)}–${Math.max(...wall).toFixed(0)}), ` +
      `${median(samples.map((s) => s.cpu))} ms of CPU; median of ${runs}`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
