import { describe, expect, it } from 'vitest'
import { formatMemory, summarizeMemory } from './memory-summary.js'

const MiB = 2 ** 20

describe('the soak memory summary', () => {
  it('gives start, peak, end and the slope over the last half of the run', () => {
    // heapUsed rises 1 MiB per minute for 10 minutes, then stays flat for 10; rss is flat with one peak.
    const samples = Array.from({ length: 21 }, (_, minute) => ({
      at: 1_000_000 + minute * 60_000,
      heapUsed: (20 + Math.min(minute, 10)) * MiB,
      rss: (minute === 3 ? 120 : 100) * MiB
    }))
    const summary = summarizeMemory(samples)
    expect(summary.samples).toBe(21)
    expect(summary.seconds).toBe(1200)
    expect(summary.heapUsed).toEqual({ start: 20 * MiB, peak: 30 * MiB, end: 30 * MiB, slopeLastHalfPerMinute: 0 })
    expect(summary.rss.peak).toBe(120 * MiB)
    expect(summarizeMemory(samples.slice(0, 11)).heapUsed.slopeLastHalfPerMinute).toBeCloseTo(MiB, 6)
    expect(formatMemory(summary)[1]).toBe('soak: server heapUsed after GC: start 20.0 MiB, peak 30.0 MiB, end 30.0 MiB; slope over the last half 0.00 MiB/min')
  })

  it('refuses an empty series', () => {
    expect(() => summarizeMemory([])).toThrow('no memory samples')
  })
})
