import { describe, expect, it } from 'vitest'
import { TokenBuckets } from '../src/token-bucket.js'

describe('token buckets per key stay bounded', () => {
  it('a flood of distinct keys, none of them full again, keeps at most maxKeys buckets', () => {
    let now = 0
    // One token per hour: a taken bucket stays short of full for the whole test.
    const buckets = new TokenBuckets(1 / 60, 1, () => now, 1000)
    for (let i = 0; i < 25_000; i++) {
      now++
      expect(buckets.take(`source-${i}`)).toBe(0)
    }
    expect(buckets.size).toBeLessThanOrEqual(1000)
  })

  it('the keys in use keep their budget: the least recently used ones are dropped first', () => {
    let now = 0
    const buckets = new TokenBuckets(1 / 60, 1, () => now, 100)
    expect(buckets.take('busy')).toBe(0)
    for (let i = 0; i < 1000; i++) {
      now++
      // `busy` asks again between strangers: it stays recently used, so its empty bucket is kept.
      if (i % 50 === 0) expect(buckets.take('busy')).toBeGreaterThan(0)
      buckets.take(`stranger-${i}`)
    }
    expect(buckets.take('busy')).toBeGreaterThan(0)
    expect(buckets.size).toBeLessThanOrEqual(100)
  })

  it('full buckets are dropped before any budget is forgotten', () => {
    let now = 0
    // One token per minute, burst 1.
    const buckets = new TokenBuckets(1, 1, () => now, 10)
    for (let i = 0; i < 10; i++) buckets.take(`old-${i}`)
    now += 60_000 // every bucket is full again
    expect(buckets.take('limited')).toBe(0)
    expect(buckets.take('limited')).toBeGreaterThan(0)
    expect(buckets.size).toBe(1)
  })
})
