import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  buildCommandLine,
  describeTarget,
  instanceSecretCommand,
  parseAddress,
  shellQuote,
} from "./command.js";

describe("parseAddress", () => {
  it.each([
    ["10.0.0.5", "22", { host: "10.0.0.5", port: 22 }],
    ["10.0.0.5:2222", "22", { host: "10.0.0.5", port: 2222 }],
    ["vm.example", "2200", { host: "vm.example", port: 2200 }],
    ["vm.example", "", { host: "vm.example", port: 22 }],
    ["fd00::5", "22", { host: "fd00::5", port: 22 }],
    ["[fd00::5]:2022", "22", { host: "fd00::5", port: 2022 }],
    ["[fd00::5]", "23", { host: "fd00::5", port: 23 }],
  ])("%s with default port %j", (address, def, want) => {
    expect(parseAddress(address, def)).toEqual(want);
  });

  it.each([
    ["", "instance has no address"],
    ["host:notaport", 'invalid address "host:notaport"'],
    ["host:70000", 'invalid address "host:70000"'],
    [":22", 'invalid address ":22"'],
  ])("rejects %j", (address, want) => {
    expect(parseAddress(address, "22")).toBe(want);
  });

  it("names IPv6 targets with brackets", () => {
    expect(describeTarget("admin", { host: "fd00::5", port: 22 })).toBe("admin@[fd00::5]:22");
  });
});

describe("buildCommandLine", () => {
  it("leaves a command without env untouched", () => {
    expect(buildCommandLine("crunch-run --list")).toBe("crunch-run --list");
    expect(buildCommandLine("true", {})).toBe("true");
  });

  it("exports quoted values that a POSIX shell reads back exactly", () => {
    const env = { A: 'it\'s $HOME `x` "q" \\ ;|&', B: "", C: "plain-1.2" };
    const line = buildCommandLine('printf "%s|%s|%s" "$A" "$B" "$C"', env);
    expect(line.startsWith("export A=")).toBe(true);
    expect(execFileSync("/bin/sh", ["-c", line], { encoding: "utf8" })).toBe(`${env.A}||${env.C}`);
  });

  it("applies env to every part of a compound command", () => {
    const line = buildCommandLine('true && printf %s "$X"; printf %s "$X"', { X: "v" });
    expect(execFileSync("/bin/sh", ["-c", line], { encoding: "utf8" })).toBe("vv");
  });

  it("refuses names a shell could misread", () => {
    expect(() => buildCommandLine("true", { "A;rm -rf /": "x" })).toThrow(
      /invalid environment variable name/,
    );
  });

  it("quotes only when needed", () => {
    expect(shellQuote("abc/d-e.f")).toBe("abc/d-e.f");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("")).toBe("''");
  });
});

describe("instanceSecretCommand", () => {
  it("uses sudo unless the remote user is root", () => {
    expect(instanceSecretCommand("root")).toBe("cat /var/run/arvados-instance-secret");
    expect(instanceSecretCommand("admin")).toBe("sudo cat /var/run/arvados-instance-secret");
  });
});
