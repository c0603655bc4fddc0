import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AppendCommitResult, AppendMessageResult, ServerStore } from '@mls/core/interfaces'
import { openPostgresServerStore } from '../src/index.js'
import { startCluster, type Cluster } from './cluster.js'

let cluster: Cluster
let instanceA: ServerStore
let instanceB: ServerStore
beforeAll(async () => {
  cluster = await startCluster()
  const url = cluster.createDatabase(`roster_race_${process.pid}`)
  // Two server instances over one database: each its own store and connection pool.
  instanceA = await openPostgresServerStore({ connectionString: url, name: 'instance A' })
  instanceB = await openPostgresServerStore({ connectionString: url, name: 'instance B' })
}, 16 * 60_000)
afterAll(async () => {
  await instanceA?.close()
  await instanceB?.close()
  cluster?.stop()
})

const ALICE = 'alice/phone'
const BOB = 'bob/laptop'
const bytes = (label: string): Uint8Array => new TextEncoder().encode(label)

describe('appendMessage checks the roster in the store, across instances', () => {
  it('a member removed through one instance never gets a message appended after the removal through the other', async () => {
    const rounds = 40
    const outcomes = { messageFirst: 0, removalFirst: 0 }
    for (let round = 0; round < rounds; round++) {
      const groupId = `race${round.toString(16).padStart(4, '0')}`
      const both = [{ leafIndex: 0, clientId: ALICE }, { leafIndex: 1, clientId: BOB }]
      await instanceA.createGroup({
        groupId,
        epoch: 1n,
        lastSeq: 0,
        roster: both,
        access: both.map((e) => ({ clientId: e.clientId, fromSeq: 0, untilSeq: null }))
      })
      // Both instances read the group with bob in its roster (what the channel checks first) ...
      expect((await instanceB.getGroup(groupId))?.roster).toEqual(both)
      // ... then alice's removal of bob (instance A) and bob's message (instance B) race.
      const [removal, message] = (await Promise.all([
        instanceA.appendCommit(groupId, {
          expectedEpoch: 1n,
          entry: { kind: 'commit', epoch: 1n, sender: ALICE, message: bytes(`remove bob ${round}`), digest: `remove-${round}` },
          roster: [{ leafIndex: 0, clientId: ALICE }],
          access: [
            { clientId: ALICE, fromSeq: 0, untilSeq: null },
            { clientId: BOB, fromSeq: 0, untilSeq: -1 }
          ],
          welcomes: []
        }),
        instanceB.appendMessage(groupId, { kind: 'application', epoch: 1n, sender: BOB, message: bytes(`bob ${round}`), digest: `bob-${round}` })
      ])) as [AppendCommitResult, AppendMessageResult]
      expect(removal.kind).toBe('accepted')
      const removalSeq = removal.kind === 'accepted' ? removal.seq : -1
      const log = await instanceA.readLog(groupId, 0, 10)
      if (message.kind === 'accepted') {
        // Bob's message got in before the removal was ordered: it sits before the commit.
        outcomes.messageFirst++
        expect(message.seq).toBeLessThan(removalSeq)
        expect(log.map((r) => r.digest)).toEqual([`bob-${round}`, `remove-${round}`])
      } else {
        outcomes.removalFirst++
        expect(message).toEqual({ kind: 'not-a-member' })
        expect(log.map((r) => r.digest)).toEqual([`remove-${round}`])
      }
    }
    expect(outcomes.messageFirst + outcomes.removalFirst).toBe(rounds)
    console.log(`roster race over ${rounds} rounds: message first ${outcomes.messageFirst}, removal first ${outcomes.removalFirst}`)
  }, 120_000)
})
