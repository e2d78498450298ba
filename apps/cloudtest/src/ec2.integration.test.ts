import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  createDriverRegistry,
  type Instance,
  type InstanceSet,
} from "@dispatch-cloud/cloud-driver-api";
import { createEc2Driver } from "@dispatch-cloud/driver-ec2";
import {
  MOTO_CREDENTIALS,
  MOTO_REGION,
  startMoto,
  type MotoServer,
} from "@dispatch-cloud/driver-ec2/testing";
import { startSshd, type Sshd } from "@dispatch-cloud/ssh-executor/testing";
import { afterAll, beforeAll, expect, test } from "vitest";
import { clusterYaml, freePort, runCloudtest } from "./testing/cli.js";

// cloudtest with the real EC2 driver against moto. moto normally hands out private 10.x
// addresses, which must never be dialled; here the instance is launched in a 127.0.0.0/16 VPC,
// so its address is a loopback one (127.0.1.x), and the test plays the VM's boot by starting
// a real OpenSSH server on exactly that address once the instance exists.

let moto: MotoServer;
const sshds: Sshd[] = [];
const dir = mkdtempSync(path.join(tmpdir(), "cloudtest-ec2-"));
const keyFile = path.join(dir, "dispatch_rsa");
// RSA: moto computes AWS-identical key pair fingerprints only for RSA keys.
execFileSync("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", keyFile]);
const publicKey = readFileSync(`${keyFile}.pub`, "utf8").trim();

/** One EC2 query-API call to moto (it does not check signatures). */
async function ec2Call(params: Record<string, string>): Promise<string> {
  const resp = await fetch(moto.endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `AWS4-HMAC-SHA256 Credential=${MOTO_CREDENTIALS.AccessKeyID}/20300101/${MOTO_REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: new URLSearchParams({ Version: "2016-11-15", ...params }).toString(),
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`moto ${params["Action"]}: ${resp.status} ${text}`);
  return text;
}

function tag(xml: string, name: string): string {
  const m = new RegExp(`<${name}>([^<]+)</${name}>`).exec(xml);
  if (m === null) throw new Error(`no <${name}> in ${xml.slice(0, 300)}`);
  return m[1] ?? "";
}

const isLoopback = (address: string): boolean => /^127\.\d+\.\d+\.\d+$/.test(address);

beforeAll(async () => {
  moto = await startMoto();
});

afterAll(async () => {
  await Promise.all(sshds.map((s) => s.stop()));
  await moto?.stop();
});

test("EC2 on moto: create in a loopback subnet, SSH to a local sshd with the secret, terminate", async () => {
  const vpc = tag(await ec2Call({ Action: "CreateVpc", CidrBlock: "127.0.0.0/16" }), "vpcId");
  const subnet = tag(
    await ec2Call({ Action: "CreateSubnet", VpcId: vpc, CidrBlock: "127.0.1.0/24" }),
    "subnetId",
  );
  const sshPort = await freePort();

  const addresses: string[] = [];
  // Refuse, before anything can connect, any address that is not on this machine.
  const guard = (i: Instance): Instance => {
    if (i.address !== "" && !isLoopback(i.address))
      throw new Error(`refusing a non-loopback instance address ${i.address}`);
    return i;
  };
  const drivers = createDriverRegistry({
    ec2: async (ctx) => {
      const set = await createEc2Driver(ctx);
      const wrapped: InstanceSet = {
        create: async (req, signal) => {
          const inst = guard(await set.create(req, signal));
          addresses.push(inst.address);
          // The "VM" boots: sshd on its address, with the secret its init command would write.
          sshds.push(
            await startSshd({
              host: inst.address,
              instanceSecret: req.tags["ArvadosInstanceSecret"] ?? "",
              authorizedKeys: [publicKey],
              extraConfig: [`Port ${sshPort}`],
            }),
          );
          return inst;
        },
        instances: async (filter, signal) => (await set.instances(filter, signal)).map(guard),
        instanceQuotaGroup: (t) => set.instanceQuotaGroup(t),
        stop: () => set.stop(),
      };
      return wrapped;
    },
  });

  const yaml = clusterYaml(
    keyFile,
    [
      "Driver: ec2",
      "ImageID: ami-12c6146b",
      `SSHPort: "${sshPort}"`,
      'BootProbeCommand: "test -s /var/run/arvados-instance-secret"',
      "ResourceTags: {Owner: ops}",
      "DriverParameters:",
      `  AccessKeyID: ${MOTO_CREDENTIALS.AccessKeyID}`,
      `  SecretAccessKey: ${MOTO_CREDENTIALS.SecretAccessKey}`,
      `  Region: ${MOTO_REGION}`,
      `  Endpoint: ${moto.endpoint}`,
      `  SubnetID: ${subnet}`,
      "  AdminUsername: root",
    ],
    ["m5large: {ProviderType: m5.large, VCPUs: 2, RAM: 8GiB, Price: 0.096}"],
  );

  const { code, stdout, stderr } = await runCloudtest(["-command", "cat /proc/self/comm"], yaml, {
    pid: 777,
    drivers,
  });
  expect({ code, stdout, stderr }).toMatchObject({ code: 0 });
  expect(addresses).toHaveLength(1);
  expect(addresses[0]).toMatch(/^127\.0\.1\.\d+$/);
  expect(stdout).toContain(`login to the instance with: ssh -p${sshPort} root@${addresses[0]}`);
  expect(stdout).toMatch(/ {2}PASS {2}check tags .*all 4 expected tags are present/);
  expect(stdout).toMatch(/ {2}PASS {2}boot probe /);
  expect(stdout).toContain("    stdout: cat");
  expect(stdout).toMatch(/instance: i-[0-9a-f]+, destroyed and no longer listed\nresult: PASSED/);
  // The secret check went over the connection sshd accepted.
  expect(sshds[0]?.acceptedLogins()).toBeGreaterThanOrEqual(1);
  // moto now lists the instance as terminated.
  const described = await ec2Call({ Action: "DescribeInstances" });
  expect(tag(described, "name")).toBe("terminated");
});
