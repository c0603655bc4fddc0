import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createMlsClient, toHex, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices } from '@mls/server'
import { sqliteClientStore, sqliteServerStore } from '@mls/storage-sqlite'
import { memoryTransport } from '@mls/transport-memory'
import { converged, groupWith, inbox, waitFor } from '../src/index.js'

/**
 * Golden conversation: real client stores (core's records in SQLite) and the
 * server store of a two-member conversation, written by the release that
 * introduced format v1 (test/golden/). Every later release must load them
 * and carry on the conversation: the groups come back at the recorded epoch
 * with the recorded epoch authenticator, nothing old is delivered again, and
 * new messages and commits work. `MLS_WRITE_GOLDEN=1` rewrites them (only
 * when a new format version is introduced; keep the old ones).
 */
const GOLDEN = fileURLToPath(new URL('./golden/', import.meta.url))
const WRITE = process.env.MLS_WRITE_GOLDEN === '1'
const VERSION = 1
const files = {
  alice: join(GOLDEN, `conversation-v${VERSION}-alice.sqlite`),
  bob: join(GOLDEN, `conversation-v${VERSION}-bob.sqlite`),
  server: join(GOLDEN, `conversation-v${VERSION}-server.sqlite`),
  record: join(GOLDEN, `conversation-v${VERSION}.json`)
}
const crypto = nodeCrypto()
const dir = mkdtempSync(join(tmpdir(), 'mls-golden-client-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Recorded {
  groupId: string
  epoch: string
  epochAuthenticator: string
  aliceReceived: string[]
  bobReceived: string[]
}

function network(paths: typeof files) {
  const serverStore = sqliteServerStore({ path: paths.server })
  const transport = memoryTransport({ services: createServices({ store: serverStore, crypto }) })
  const client = (userId: 'alice' | 'bob'): Promise<MlsClient> =>
    createMlsClient({ userId, deviceId: 'phone', crypto, store: sqliteClientStore({ path: paths[userId] }), transport })
  return { serverStore, client }
}

describe(`golden conversation v${VERSION} (core records in SQLite client stores, and the server store)`, () => {
  it('has the golden files (MLS_WRITE_GOLDEN=1 writes them first)', async () => {
    if (WRITE) await writeGolden()
    for (const file of Object.values(files)) expect(existsSync(file), file).toBe(true)
  })

  async function writeGolden(): Promise<void> {
    for (const file of [files.alice, files.bob, files.server]) for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true })
    const net = network(files)
    const [alice, bob] = [await net.client('alice'), await net.client('bob')]
    await bob.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice, [bob])
    const [inA, inB] = [inbox(a), inbox(b)]
    await a.send('hello bob')
    await waitFor(() => inB.texts.length === 1, 'bob to read')
    await b.update()
    await converged([a, b], 2n)
    await b.send('hello alice')
    // Members receive their own messages too, when the channel delivers them.
    await waitFor(() => inA.texts.length === 2 && inB.texts.length === 2, 'both to read both')
    const record: Recorded = { groupId: toHex(a.groupId), epoch: a.epoch.toString(), epochAuthenticator: toHex(a.epochAuthenticator()), aliceReceived: inA.texts, bobReceived: inB.texts }
    await alice.close()
    await bob.close()
    await net.serverStore.close()
    writeFileSync(files.record, `${JSON.stringify(record, null, 2)}\n`)
  }

  it('loads the stored conversation and carries it on', async () => {
    for (const file of Object.values(files)) expect(existsSync(file), file).toBe(true)
    const recorded = JSON.parse(readFileSync(files.record, 'utf8')) as Recorded
    const copies = { alice: join(dir, 'alice.sqlite'), bob: join(dir, 'bob.sqlite'), server: join(dir, 'server.sqlite'), record: files.record }
    for (const name of ['alice', 'bob', 'server'] as const) copyFileSync(files[name], copies[name])
    const net = network(copies)
    const [alice, bob] = [await net.client('alice'), await net.client('bob')]
    try {
      const [a, b] = [alice.group(recorded.groupId), bob.group(recorded.groupId)]
      expect(a).toBeDefined()
      expect(b).toBeDefined()
      for (const g of [a!, b!]) {
        expect(g.epoch).toBe(BigInt(recorded.epoch))
        expect(toHex(g.epochAuthenticator())).toBe(recorded.epochAuthenticator)
        expect(g.status).toBe('active')
      }
      expect(recorded.aliceReceived).toEqual(['hello bob', 'hello alice'])
      expect(recorded.bobReceived).toEqual(['hello bob', 'hello alice'])
      const [inA, inB] = [inbox(a!), inbox(b!)]
      await a!.send('after the upgrade')
      await waitFor(() => inB.texts.length === 1 && inA.texts.length === 1, 'both to read after the upgrade')
      await a!.update()
      await converged([a!, b!], BigInt(recorded.epoch) + 1n)
      await b!.send('still here')
      await waitFor(() => inA.texts.length === 2 && inB.texts.length === 2, 'both to read the second message')
      // Nothing from before the reload came again.
      expect(inA.texts).toEqual(['after the upgrade', 'still here'])
      expect(inB.texts).toEqual(['after the upgrade', 'still here'])
    } finally {
      await alice.close()
      await bob.close()
      await net.serverStore.close()
    }
  })
})
