import { describe, expect, test } from "vitest";
import { fields, formatBytes, formatTime, shellCommand, table, truncate } from "./format.js";
import { containerRequest } from "./request.js";

describe("formatting for people", () => {
  test.each([
    [0, "0 bytes"],
    [1000, "1000 bytes"],
    [1024, "1 KiB"],
    [268435456, "256 MiB"],
    [1610612736, "1.5 GiB"],
    [64 * 2 ** 30, "64 GiB"],
  ])("formatBytes(%d) = %s", (n, text) => expect(formatBytes(n)).toBe(text));

  test("a command pastes back into a shell", () => {
    expect(shellCommand(["sh", "-c", "echo it's; exit 7", "a=b/c.d"])).toBe(
      `sh -c 'echo it'\\''s; exit 7' a=b/c.d`,
    );
  });

  test("times, truncation, tables and fields", () => {
    expect(formatTime("2026-12-04T10:11:12.345678Z")).toBe("2026-12-04 10:11:12Z");
    expect(formatTime(null)).toBe("-");
    expect(truncate("abcdef", 4)).toBe("abc…");
    expect(truncate("abc", 4)).toBe("abc");
    expect(
      table([
        ["UUID", "STATE", "COMMAND"],
        ["x", "Queued", "echo hi"],
      ]),
    ).toBe("UUID  STATE   COMMAND\nx     Queued  echo hi\n");
    expect(
      fields([
        ["uuid", "x"],
        ["lock count", "1"],
      ]),
    ).toBe("uuid:       x\nlock count: 1\n");
  });
});

describe("containerRequest", () => {
  test("asks for exactly what submit's flags say, and never reuses a container", () => {
    const cr = containerRequest({
      command: ["nvidia-smi"],
      priority: 7,
      image: "example/cuda",
      vcpus: 4,
      ram: 2 ** 33,
      scratch: 2 ** 30,
      preemptible: true,
      gpu: { count: 2, stack: "cuda", driverVersion: "11.4", hardwareTarget: ["8.0"], vram: 0 },
    });
    expect(cr).toEqual({
      name: "dispatch-cloud submit: nvidia-smi",
      state: "Committed",
      priority: 7,
      container_image: "example/cuda",
      command: ["nvidia-smi"],
      output_path: "/out",
      cwd: "/out",
      mounts: { "/out": { kind: "tmp", capacity: 2 ** 30 } },
      runtime_constraints: {
        vcpus: 4,
        ram: 2 ** 33,
        gpu: {
          stack: "cuda",
          device_count: 2,
          driver_version: "11.4",
          hardware_target: ["8.0"],
          vram: 0,
        },
      },
      scheduling_parameters: { preemptible: true },
      use_existing: false,
    });
  });
});
