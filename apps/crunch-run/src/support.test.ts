import { describe, expect, it } from "vitest";
import { dockerRunArgs, type ContainerSpec } from "./engine.js";
import { refusal, unsupportedFeatures, type ContainerNeeds } from "./support.js";

const plain: ContainerNeeds = {
  container_image: "arvados/jobs",
  mounts: { "/out": { kind: "tmp" } },
  output_glob: [],
};

describe("unsupportedFeatures", () => {
  it.each<[string, Partial<ContainerNeeds>, Record<string, { kind: string }>, string, string[]]>([
    ["tmp mounts and a named image", {}, {}, "process", []],
    ["no mounts at all", { mounts: null }, {}, "docker", []],
    [
      "a collection mount",
      { mounts: { "/out": { kind: "tmp" }, "/in": { kind: "collection" } } },
      {},
      "docker",
      ['"collection" mount at "/in" (needs Keep)'],
    ],
    [
      "a keep mount",
      { mounts: { "/keep": { kind: "keep" } } },
      {},
      "docker",
      ['"keep" mount at "/keep" (needs Keep)'],
    ],
    [
      "json and file mounts",
      { mounts: { "/cwl.input.json": { kind: "json" }, stdout: { kind: "file" } } },
      {},
      "docker",
      [
        '"json" mount at "/cwl.input.json" (only "tmp" mounts are supported)',
        '"file" mount at "stdout" (writes into the output collection)',
      ],
    ],
    [
      "secret mounts, from Keep or not",
      {},
      { "/etc/secret.txt": { kind: "text" }, "/keep/s": { kind: "collection" } },
      "docker",
      [
        'secret "text" mount at "/etc/secret.txt" (only "tmp" mounts are supported)',
        'secret "collection" mount at "/keep/s" (needs Keep)',
      ],
    ],
    [
      "an image stored in Keep",
      { container_image: "d41d8cd98f00b204e9800998ecf8427e+0" },
      {},
      "docker",
      [
        "container image d41d8cd98f00b204e9800998ecf8427e+0 is a Keep collection (needs Keep and docker load)",
      ],
    ],
    [
      "an output_glob",
      { output_glob: ["*.bam"] },
      {},
      "docker",
      ["output_glob (the output must be saved as a collection)"],
    ],
    [
      "singularity",
      {},
      {},
      "singularity",
      ["the singularity runtime engine (--runtime-engine=singularity)"],
    ],
  ])("%s", (_name, container, secret, engine, want) => {
    expect(unsupportedFeatures({ ...plain, ...container }, secret, engine)).toEqual(want);
  });

  it("names the feature and the fix in runtime_status", () => {
    const status = refusal(['"collection" mount at "/in" (needs Keep)']);
    expect(status.error).toBe(
      `dispatch-cloud's crunch-run cannot run this container faithfully: "collection" mount at "/in" (needs Keep). Use Arvados's crunch-run.`,
    );
    expect(status.errorDetail).toMatch(/DeployRunnerBinary/);
  });
});

describe("dockerRunArgs", () => {
  const spec: ContainerSpec = {
    uuid: "zzzzz-dz642-000000000000001",
    command: ["echo", "hi"],
    cwd: "/out",
    environment: { A: "1" },
    container_image: "debian:12",
    runtime_constraints: { ram: 1 << 30, API: false },
  };
  const base = { lockFd: null, enableMemoryLimit: true, enableNetworking: "default" };

  it.each<
    [string, Partial<ContainerSpec>, Partial<typeof base & { networkMode: string }>, string[]]
  >([
    [
      "no network, RAM limited",
      {},
      {},
      ["--network=none", "--memory=1073741824", "--memory-swap=1073741824"],
    ],
    [
      "API access brings the network",
      { runtime_constraints: { ram: 1 << 30, API: true } },
      { enableMemoryLimit: false },
      [],
    ],
    [
      "networking always, in host mode",
      {},
      { enableNetworking: "always", networkMode: "host", enableMemoryLimit: false },
      ["--network=host"],
    ],
    [
      "tiny RAM raised to docker's minimum",
      { runtime_constraints: { ram: 1024 } },
      {},
      ["--network=none", "--memory=4194304", "--memory-swap=4194304"],
    ],
  ])("%s", (_name, s, o, flags) => {
    expect(dockerRunArgs({ ...spec, ...s }, { networkMode: "default", ...base, ...o })).toEqual([
      "run",
      "--rm",
      "--name",
      spec.uuid,
      "--workdir",
      "/out",
      ...flags,
      "--env",
      "A=1",
      "debian:12",
      "echo",
      "hi",
    ]);
  });
});
