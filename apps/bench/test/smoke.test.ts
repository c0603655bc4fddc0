/**
 * A short run of `pnpm bench`'s engine and API benchmarks at a few members: each produces a median for
 * every operation and every side (ours, OpenMLS, floor). Nothing is timed against a budget here.
 */
import { describe, expect, it } from 'vitest'
import { apiOperations, runApi } from '../src/api.js'
import { engineOperations, runEngine } from '../src/engine.js'

describe('pnpm bench, short', () => {
  it('engine: ours (two tree shapes), OpenMLS and the floor produce a median for every operation at 4 members', async () => {
    const [result] = await runEngine({ sizes: [4], reps: 1, openMls: true, print: false })
    expect(result?.size).toBe(4)
    for (const op of engineOperations) {
      expect(result!.ours[op]).toBeGreaterThan(0)
      expect(result!.openMls?.[op]).toBeGreaterThan(0)
      expect(result!.floor[op]).toBeGreaterThan(0)
      expect(result!.oursSteady[op]).toBeGreaterThan(0)
    }
  })

  it('api: every operation through createMlsClient produces a median at 4 members', async () => {
    const [result] = await runApi({ sizes: [4], reps: 1, print: false })
    expect(result?.size).toBe(4)
    for (const op of apiOperations) expect(result!.medians[op]).toBeGreaterThan(0)
  })
})
