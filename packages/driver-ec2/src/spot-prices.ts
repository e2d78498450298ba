import { DescribeSpotPriceHistoryCommand, type EC2Client } from "@aws-sdk/client-ec2";
import type { Logger } from "@dispatch-cloud/arvados-types";
import {
  errorMessage,
  normalizePriceHistory,
  type InstancePrice,
} from "@dispatch-cloud/cloud-driver-api";
import { signalOption } from "./keypair.js";

/** What the cache needs to know about one listed spot instance. */
export interface SpotInstanceKey {
  readonly instanceType: string;
  readonly availabilityZone: string;
}

interface Entry {
  prices: InstancePrice[];
  updatedMs: number;
}

// Only spot prices are ever fetched, so the key is (type, zone); on-demand lookups miss.
const keyOf = (type: string, zone: string): string => JSON.stringify([type, zone]);

/**
 * Spot price history per (instance type, availability zone), refreshed from
 * DescribeSpotPriceHistory when any listed spot instance's entry is older than the interval.
 */
export class SpotPriceCache {
  readonly #entries = new Map<string, Entry>();

  constructor(
    private readonly client: EC2Client,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  /** Cached history (newest first) for a spot instance of `type` in `zone`; [] if none. */
  history(type: string, zone: string): readonly InstancePrice[] {
    return this.#entries.get(keyOf(type, zone))?.prices ?? [];
  }

  /**
   * Refresh if needed for these spot instances. Errors are logged, never thrown: prices are an
   * extra the listing must not fail for.
   */
  async refresh(
    instances: readonly SpotInstanceKey[],
    nowMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    if (this.intervalMs <= 0 || instances.length === 0) return;
    const staleBefore = nowMs - this.intervalMs;
    // A key never updated counts as stale, so zones AWS has no records for are retried each time.
    const needed = instances.some(
      (i) =>
        (this.#entries.get(keyOf(i.instanceType, i.availabilityZone))?.updatedMs ?? -Infinity) <
        staleBefore,
    );
    if (!needed) return;
    const types = [...new Set(instances.map((i) => i.instanceType))];
    // AWS can't say "these are all changes up to T", so overlap three intervals and de-duplicate.
    const input = {
      StartTime: new Date(nowMs - 3 * this.intervalMs),
      Filters: [
        { Name: "instance-type", Values: types },
        { Name: "product-description", Values: ["Linux/UNIX"] },
      ],
    };
    let NextToken: string | undefined;
    for (;;) {
      let resp;
      try {
        resp = await this.client.send(
          new DescribeSpotPriceHistoryCommand({
            ...input,
            ...(NextToken === undefined ? {} : { NextToken }),
          }),
          signalOption(signal),
        );
      } catch (err) {
        this.logger.warn({ error: errorMessage(err) }, "error retrieving spot instance prices");
        break;
      }
      for (const rec of resp.SpotPriceHistory ?? []) {
        if (!rec.InstanceType || rec.SpotPrice === undefined || rec.Timestamp === undefined)
          continue;
        const price = Number(rec.SpotPrice);
        if (rec.SpotPrice.trim() === "" || !Number.isFinite(price)) continue;
        const key = keyOf(rec.InstanceType, rec.AvailabilityZone ?? "");
        let entry = this.#entries.get(key);
        if (entry === undefined) {
          entry = { prices: [], updatedMs: nowMs };
          this.#entries.set(key, entry);
        }
        entry.prices.push({ StartTime: rec.Timestamp, Price: price });
        entry.updatedMs = nowMs;
      }
      if (resp.NextToken === undefined || resp.NextToken === "") break;
      NextToken = resp.NextToken;
    }
    const expiredBefore = nowMs - 64 * this.intervalMs;
    for (const [key, entry] of this.#entries) {
      if (entry.updatedMs < expiredBefore) this.#entries.delete(key);
      else entry.prices = normalizePriceHistory(entry.prices);
    }
  }
}
