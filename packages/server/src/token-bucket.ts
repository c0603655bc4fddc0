interface Bucket {
  tokens: number
  updatedAt: number
}

/** Token buckets per key: `ratePerMinute` refill, `burst` capacity. */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>()

  constructor(
    private readonly ratePerMinute: number,
    private readonly burst: number,
    private readonly now: () => number
  ) {}

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
      if (this.buckets.size >= 10_000) this.prune(now)
      bucket = { tokens: this.burst, updatedAt: now }
      this.buckets.set(key, bucket)
      return bucket
    }
    const elapsed = Math.max(0, now - bucket.updatedAt)
    bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsed * this.ratePerMinute) / 60_000)
    bucket.updatedAt = now
    return bucket
  }

  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      const elapsed = Math.max(0, now - bucket.updatedAt)
      if (bucket.tokens + (elapsed * this.ratePerMinute) / 60_000 >= this.burst) this.buckets.delete(key)
    }
  }
}
