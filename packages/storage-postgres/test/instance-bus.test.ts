import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { postgresInstanceBus, type InstanceNotice, type PostgresInstanceBus } from '../src/index.js'
import { startCluster, type Cluster } from './cluster.js'

let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster()
}, 16 * 60_000)
afterAll(() => cluster?.stop())

async function next(received: InstanceNotice[], count: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (received.length < count) {
    if (Date.now() > deadline) throw new Error(`only ${received.length} of ${count} notices arrived`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('postgresInstanceBus (LISTEN/NOTIFY)', () => {
  it('carries notices to the other instances, not back to the sender, and survives losing its listening connection', async () => {
    const states: string[] = []
    const one = await postgresInstanceBus({ connectionString: cluster.url })
    const two = await postgresInstanceBus({ connectionString: cluster.url, onStateChange: (s) => states.push(s) })
    const buses: PostgresInstanceBus[] = [one, two]
    try {
      const atOne: InstanceNotice[] = []
      const atTwo: InstanceNotice[] = []
      one.subscribe((n) => atOne.push(n))
      two.subscribe((n) => atTwo.push(n))
      one.publish({ type: 'entry', groupId: 'aa01', seq: 7 })
      one.publish({ type: 'welcome', clientId: 'bob/phone', seq: 2 })
      two.publish({ type: 'entry', groupId: 'bb02', seq: 1 })
      await next(atTwo, 2)
      await next(atOne, 1)
      expect(atTwo).toEqual([
        { type: 'entry', groupId: 'aa01', seq: 7 },
        { type: 'welcome', clientId: 'bob/phone', seq: 2 }
      ])
      // The last notice is a later positive signal: one's own notices never came back to it.
      expect(atOne).toEqual([{ type: 'entry', groupId: 'bb02', seq: 1 }])

      // Someone's payload on the channel that is not a notice is ignored.
      const raw = new pg.Client({ connectionString: cluster.url })
      await raw.connect()
      await raw.query(`SELECT pg_notify('mls_appended', 'not json')`)
      // Kill two's listening connection: it reconnects and hears notices again.
      await raw.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN mls_appended' AND pid <> pg_backend_pid()`)
      await raw.end()
      const deadline = Date.now() + 10_000
      while (!states.includes('reconnecting') || states.at(-1) !== 'listening') {
        if (Date.now() > deadline) throw new Error(`no reconnection: ${states.join(',')}`)
        await new Promise((r) => setTimeout(r, 5))
      }
      one.publish({ type: 'entry', groupId: 'aa01', seq: 8 })
      await next(atTwo, 3)
      expect(atTwo[2]).toEqual({ type: 'entry', groupId: 'aa01', seq: 8 })
      expect(two.stats().received).toBe(3)
      expect(one.stats()).toMatchObject({ published: 3, publishFailures: 0 })
    } finally {
      for (const bus of buses) await bus.close()
    }
  }, 60_000)
})
