import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createMlsClient, errorCode, type MlsClient } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { keepOpen } from '@mls/scenarios'
import { webSockets } from '../src/index.js'
import { createWsNetwork, crypto, type WsNetwork } from './helpers.js'

// Issue 12, "invitation flood": strangers add a victim, through its last-resort KeyPackage, to 260 groups.
// Before pacing, the victim's client failed every start with RATE_LIMITED (it synced every group at once, 64
// requests in flight against the server's default limits). Now it starts, joins and catches up every group,
// and starts again from its store, against the real WebSocket server with its default rate limits.

const GROUPS = 260

let net: WsNetwork | undefined
const opened: MlsClient[] = []

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((c) => c.close()))
  await net?.close()
  net = undefined
})

/** The stranger's setup runs on any client version: it waits out the server's rate limits itself. */
async function patiently<T>(operation: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await operation()
    } catch (error) {
      if (errorCode(error) !== 'RATE_LIMITED') throw error
      const asked = (error as { details?: { retryAfterMs?: number } }).details?.retryAfterMs ?? 50
      await new Promise((resolve) => setTimeout(resolve, Math.max(10, asked)))
    }
  }
}

describe('an invitation flood', () => {
  it(`a victim added to ${GROUPS} groups by a stranger starts, joins them all, and starts again, within the default rate limits`, async () => {
    net = await createWsNetwork()
    const transport = () => webSockets({ url: net!.server.url, WebSocket, reconnect: { initialDelayMs: 20, maxDelayMs: 250, jitter: 0.5 }, requestTimeoutMs: 30_000 })
    const store = keepOpen(memoryClientStore({ name: 'victim' }))
    const open = async () => {
      const client = await createMlsClient({ userId: 'victim', deviceId: 'phone', crypto, store, transport: transport() })
      opened.push(client)
      return client
    }
    // The victim publishes only its last-resort KeyPackage, the one served again and again.
    const first = await open()
    await first.publishKeyPackages({ count: 0 })
    await first.close()

    // The server's group quota holds one identity to 200 groups at once, so the flood comes from two strangers.
    const strangers = [await net.client('stranger'), await net.client('other-stranger')]
    const keyPackages = await Promise.all(strangers.map(async (s) => (await patiently(() => s.fetchKeyPackages(['victim'])))[0]!))
    for (let i = 0; i < GROUPS; i++) {
      const stranger = strangers[i % strangers.length]!
      const group = await patiently(() => stranger.createGroup())
      await patiently(() => group.addMembers([keyPackages[i % strangers.length]!]))
    }
    for (const stranger of strangers) await stranger.close()

    // The victim's next start processes the flood of Welcomes and catches every group up.
    const victim = await open()
    expect(victim.listGroups()).toHaveLength(GROUPS)
    expect(victim.listGroups().every((g) => g.status === 'active')).toBe(true)
    expect(victim.connectionState).toBe('online')
    await victim.close()

    // And every later start, from the store, syncs the groups without failing.
    const again = await open()
    expect(again.listGroups()).toHaveLength(GROUPS)
    expect(again.listGroups().every((g) => g.status === 'active')).toBe(true)
    await again.close()
  }, 300_000)
})
