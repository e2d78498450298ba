import { describe, expect, it } from "vitest";
import { ContentStore, VmFiles } from "./files.js";

describe("ContentStore and VmFiles", () => {
  it("keeps one Buffer per distinct content across VMs, and VMs' files stay separate", () => {
    const store = new ContentStore();
    const a = new VmFiles(store);
    const b = new VmFiles(store);
    a.set("/bin/runner", Buffer.from("same bytes"));
    b.set("/bin/runner", Buffer.from("same bytes"));
    b.set("/secret", Buffer.from("b's secret"));
    expect(a.get("/bin/runner")).toBe(b.get("/bin/runner"));
    expect(store.size).toBe(2);
    // Replacing a file on one VM leaves the other's alone.
    a.set("/bin/runner", Buffer.from("new bytes"));
    expect(a.get("/bin/runner")?.toString()).toBe("new bytes");
    expect(b.get("/bin/runner")?.toString()).toBe("same bytes");
    expect(a.has("/secret")).toBe(false);
    // Same length, different bytes: not confused.
    a.set("/x", Buffer.from("abc"));
    b.set("/x", Buffer.from("abd"));
    expect(a.get("/x")?.toString()).toBe("abc");
    expect(b.get("/x")?.toString()).toBe("abd");
  });

  it("computes md5 like md5sum, once per stored Buffer", () => {
    const store = new ContentStore();
    const data = store.intern(Buffer.from("binary"));
    expect(store.md5(data)).toBe("9d7183f16acce70658f686ae7f1a4d20");
    expect(store.md5(store.intern(Buffer.from("binary")))).toBe("9d7183f16acce70658f686ae7f1a4d20");
  });
});
