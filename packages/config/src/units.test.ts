import { describe, expect, test } from "vitest";
import { formatDuration, parseByteSize, parseDuration } from "./units.js";

const GiB = 2 ** 30;

describe("parseByteSize", () => {
  test.each<[string | number, number]>([
    [0, 0],
    ["0", 0],
    [1234, 1234],
    ["1234", 1234],
    ["64GiB", 64 * GiB],
    ["128GB", 128e9],
    ["128G", 128e9],
    ["550MiB", 550 * 2 ** 20],
    ["1.5GiB", 1.5 * GiB],
    ["1.5KiB", 1536],
    ["1.0001K", 1000], // fractions truncate to whole bytes
    ["64 GiB", 64 * GiB],
    ["12B", 12],
    ["1e3KB", 1e6],
    ["4E", 4e18], // a trailing E is exa, not an exponent
    ["2EiB", 2 * 2 ** 60],
    ["1Ki", 1024],
    ["1T", 1e12],
    ["1Ti", 2 ** 40],
    ["1P", 1e15],
    ["1PiB", 2 ** 50],
  ])("%j is %d bytes", (input, bytes) => {
    expect(parseByteSize(input)).toEqual({ ok: true, value: bytes });
  });

  test.each<[string | number, string]>([
    ["64GeeB", 'invalid byte size "64GeeB"'], // the "e" reads as part of a number, as in Arvados
    ["64GXB", 'invalid unit "GXB"'],
    ["1kb", 'invalid unit "kb"'], // units are case-sensitive
    ["1gb", 'invalid unit "gb"'],
    ["1Gib", 'invalid unit "Gib"'],
    ["GiB", 'invalid byte size "GiB"'],
    ["", 'invalid byte size ""'],
    ["1.5", 'invalid byte size "1.5" (a size without a unit must be a whole number of bytes)'],
    ["+5G", 'invalid byte size "+5G"'],
    ["10EiB", 'size "10EiB" overflows int64'],
    ["8EiB", 'size "8EiB" overflows int64'],
    ["9.3E", 'size "9.3E" overflows int64'],
    [1.5, 'invalid byte size "1.5" (not a whole number)'],
  ])("%j is rejected: %s", (input, error) => {
    expect(parseByteSize(input)).toEqual({ ok: false, error });
  });
});

describe("parseDuration", () => {
  test.each<[string | number, number]>([
    ["0", 0],
    [0, 0],
    ["0s", 0],
    ["300ms", 300],
    ["10s", 10_000],
    ["1m", 60_000],
    ["1m30s", 90_000],
    ["1h30m", 5_400_000],
    ["2h", 7_200_000],
    ["1.5h", 5_400_000],
    ["-1m", -60_000],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["2000000ns", 2],
    [".5s", 500],
  ])("%j is %d ms", (input, ms) => {
    expect(parseDuration(input)).toEqual({ ok: true, value: ms });
  });

  test.each<[string | number, string]>([
    [10, 'missing unit in duration "10"'],
    ["10", 'missing unit in duration "10"'],
    ["1h30", 'missing unit in duration "1h30"'],
    ["10x", 'unknown unit "x" in duration "10x"'],
    ["10S", 'unknown unit "S" in duration "10S"'], // units are case-sensitive
    ["", 'invalid duration ""'],
    ["s", 'invalid duration "s"'],
    ["3000000h", 'invalid duration "3000000h" (too large)'],
  ])("%j is rejected: %s", (input, error) => {
    expect(parseDuration(input)).toEqual({ ok: false, error });
  });
});

describe("formatDuration writes Arvados's form", () => {
  test.each<[number, string]>([
    [0, "0s"],
    [300, "300ms"],
    [1.5, "1.5ms"],
    [0.0015, "1.5µs"],
    [0.000001, "1ns"],
    [10_000, "10s"],
    [1500, "1.5s"],
    [60_000, "1m"],
    [90_000, "1m30s"],
    [3_600_000, "1h"],
    [5_400_000, "1h30m"],
    [3_605_000, "1h0m5s"],
    [86_400_000, "24h"],
    [-60_000, "-1m"],
  ])("%d ms is %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    // and reads back as the same duration
    expect(parseDuration(text)).toEqual({ ok: true, value: ms });
  });
});
