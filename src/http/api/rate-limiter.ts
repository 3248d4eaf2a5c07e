/**
 * Requests per second per token for the HTTP API (docs/http-api.md): one token bucket per bearer token (per
 * client address for calls without one). Bounded: past `maxKeys` keys the longest-unused half is forgotten,
 * and a forgotten key starts again with a full bucket, so memory stays bounded whatever callers send.
 */
import { TokenBucket } from '../../broker/token-bucket.js';

export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    /** Requests per second; 0 switches the limit off. */
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  get enabled(): boolean {
    return this.ratePerSecond > 0;
  }

  /** Takes one request's token for `key`; false: over the limit (answer 429). */
  take(key: string, now: number): boolean {
    if (this.ratePerSecond <= 0) return true;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.forgetOldest();
      bucket = new TokenBucket(this.ratePerSecond, this.burst, now);
    } else {
      // Re-inserted: the map's order is then the order of last use.
      this.buckets.delete(key);
    }
    this.buckets.set(key, bucket);
    return bucket.take(now);
  }

  private forgetOldest(): void {
    let drop = Math.ceil(this.buckets.size / 2);
    for (const key of this.buckets.keys()) {
      if (drop-- <= 0) break;
      this.buckets.delete(key);
    }
  }
}
