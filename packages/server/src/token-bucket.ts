interface Bucket {
  tokens: number
  updatedAt: number
}

/** Keys whose buckets are kept at most, by default (each about 100 bytes). */
const DEFAULT_MAX_KEYS = 10_000

/**
 * Token buckets per key: `ratePerMinute` refill, `burst` capacity. At most
 * `maxKeys` buckets are kept: past that, full buckets (which hold nothing a
 * new one would not) are dropped, then the least recently used ones, so a
 * flood of distinct keys (sources, identities) cannot grow the map without
 * bound. A dropped key starts again with a full bucket.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>()

  constructor(
    private readonly ratePerMinute: number,
    private readonly burst: number,
    private readonly now: () => number,
    private readonly maxKeys: number = DEFAULT_MAX_KEYS
  ) {}

  /** Buckets held now (at most `maxKeys`). */
  get size(): number {
    return this.buckets.size
  }

  /** Take one token; returns 0 on success, else the milliseconds until one is available. */
  take(key: string): number {
    const now = this.now()
    const bucket = this.refill(key, now)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.ceil(((1 - bucket.tokens) * 60_000) / this.ratePerMinute)
  }

  /** Give back a token taken for work that turned out not to need it. */
  refund(key: string): void {
    const bucket = this.buckets.get(key)
    if (bucket !== undefined) bucket.tokens = Math.min(this.burst, bucket.tokens + 1)
  }

  private refill(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.prune(now)
      bucket = { tokens: this.burst, updatedAt: now }
      this.buckets.set(key, bucket)
      return bucket
    }
    // Most recently used last: the map's order is the eviction order.
    this.buckets.delete(key)
    this.buckets.set(key, bucket)
    const elapsed = Math.max(0, now - bucket.updatedAt)
    bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsed * this.ratePerMinute) / 60_000)
    bucket.updatedAt = now
    return bucket
  }

  /** Drop the full buckets; if that frees nothing, the least recently used tenth. */
  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      const elapsed = Math.max(0, now - bucket.updatedAt)
      if (bucket.tokens + (elapsed * this.ratePerMinute) / 60_000 >= this.burst) this.buckets.delete(key)
    }
    if (this.buckets.size < this.maxKeys) return
    let evict = Math.max(1, Math.floor(this.maxKeys / 10))
    for (const key of this.buckets.keys()) {
      if (evict-- <= 0) break
      this.buckets.delete(key)
    }
  }
}
