import { describe, expect, it } from "vitest";
import { ThrottleBackoff } from "./backoff.js";

describe("ThrottleBackoff", () => {
  it("grows ×1.5 + 1 s from 1 s up to 60 s and resets to 0", () => {
    const b = new ThrottleBackoff();
    expect(b.delayMs).toBe(0);
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays).toEqual([
      1000, 2500, 4750, 8125, 13187.5, 20781.25, 32171.875, 49257.8125, 60000, 60000,
    ]);
    b.reset();
    expect(b.delayMs).toBe(0);
    expect(b.next()).toBe(1000);
  });
});
