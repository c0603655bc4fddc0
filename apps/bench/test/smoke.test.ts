/**
 * A short run of `pnpm bench`'s engine and API benchmarks at a few members: each produces a median for
 * every operation and every side (ours, OpenMLS, floor). Nothing is timed against a budget here.
 */
import { describe, expect, it } from 'vitest'
import { apiOperations, runApi } from '../src/api.js'
import { engineOperations, runEngine } from '../src/engine.js'
import { largeOperations, runLarge } from '../src/large.js'

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

  it('large: the end-to-end flow (adds in batches, update, process, add, join, send, receive) runs at 7 members and states memory', async () => {
    const result = await runLarge({ size: 7, batch: 3 })
    expect(result.size).toBe(7)
    // Created at epoch 0; Bob and 5 others added in two batches of 3, the update, the add of the joiner.
    expect(result.epoch).toBe(4n)
    for (const op of largeOperations) expect(result.timings[op]).toBeGreaterThan(0)
    expect(result.heapMiB).toBeGreaterThan(0)
    for (const bytes of Object.values(result.storeBytes)) expect(bytes).toBeGreaterThan(0)
    // The server holds one Welcome per commit that added members (two batches and the joiner), not one per member (7).
    expect(result.serverStore.welcomeCopies).toBe(3)
    expect(result.serverStore.peakBytes).toBeGreaterThan(result.serverStore.welcomeBytes)
  }, 120_000)
})
