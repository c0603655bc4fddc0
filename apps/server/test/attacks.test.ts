import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createMlsClient, signChallenge, type CiphersuiteName, type Group, type MlsClient, type PacingOptions } from '@mls/core'
import { getCiphersuiteFromName } from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { joined, waitFor } from '@mls/scenarios'
import { startServerProcess, type ServerProcess } from './harness.js'

// Attacks on who speaks for a user (issue 8), each against the real server process.

const crypto = nodeCrypto()
const cleanups: (() => Promise<void> | void)[] = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function server(extraArgs: string[] = []): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'mls-attacks-'))
  const proc = await startServerProcess(dir, 0, extraArgs)
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  return proc
}

const transport = (url: string) => webSockets({ url, WebSocket, reconnect: { enabled: false } })

async function client(url: string, userId: string, deviceId = 'laptop', ciphersuite?: CiphersuiteName, pacing?: PacingOptions): Promise<MlsClient> {
  const c = await createMlsClient({
    userId,
    deviceId,
    crypto,
    store: memoryClientStore({ name: `${userId}/${deviceId}` }),
    transport: transport(url),
    ...(ciphersuite === undefined ? {} : { ciphersuite }),
    ...(pacing === undefined ? {} : { pacing })
  })
  cleanups.push(() => c.close())
  return c
}

const texts = (g: Group): string[] => {
  const out: string[] = []
  g.on('message:received', (m) => out.push(new TextDecoder().decode(m.plaintext)))
  return out
}

describe('an outsider cannot speak for another user', () => {
  it('device injection: an attacker who registers bob/evil is not added when alice adds bob, and never reads the group', async () => {
    const proc = await server()
    const alice = await client(proc.url, 'alice')
    const bob = await client(proc.url, 'bob', 'phone')
    await bob.publishKeyPackages({ count: 2 })
    // The attacker registers a device id under bob's user id with its own key.
    const evil = await client(proc.url, 'bob', 'evil')
    await evil.publishKeyPackages({ count: 2 })

    const group = await alice.createGroup()
    const outcome = await alice.addUsers(group, ['bob'])
    expect(outcome).toMatchObject({ kind: 'committed', added: ['bob/phone'] })
    const atBob = await joined(bob, group.groupId)
    const received = texts(atBob)
    await group.send('for bob only')
    await waitFor(() => received.length === 1, 'bob to receive the message')
    expect(received).toEqual(['for bob only'])
    // Positive signal that nothing reached the attacker: its own Welcome fetch finds nothing.
    expect(await evil.processWelcomes()).toEqual([])
    expect(evil.group(group.groupId)).toBeUndefined()
    expect(group.members().map((m) => m.clientId)).toEqual(['alice/laptop', 'bob/phone'])
  })

  it('an unlisted device cannot pass for its user in a group: alice refuses the Welcome of a group bob/evil created', async () => {
    const proc = await server()
    await client(proc.url, 'bob', 'phone')
    const alice = await client(proc.url, 'alice')
    await alice.publishKeyPackages({ count: 1 })
    const evil = await client(proc.url, 'bob', 'evil')
    const rejected = alice.once('welcome:rejected')
    const group = await evil.createGroup()
    expect(await evil.addUsers(group, ['alice'])).toMatchObject({ kind: 'committed', added: ['alice/laptop'] })
    expect((await rejected).error.code).toBe('WELCOME_INVALID')
    expect(alice.group(group.groupId)).toBeUndefined()
  })

  it('a planted device of bob with a KeyPackage in another ciphersuite neither blocks adding bob nor burns his one-time KeyPackages', async () => {
    const proc = await server()
    const alice = await client(proc.url, 'alice')
    const bob = await client(proc.url, 'bob', 'phone')
    await bob.publishKeyPackages({ count: 3 })
    const planted = await client(proc.url, 'bob', 'planted', 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256')
    await planted.publishKeyPackages({ count: 3 })

    const first = await alice.createGroup()
    expect(await alice.addUsers(first, ['bob'])).toMatchObject({ kind: 'committed', added: ['bob/phone'] })
    const second = await alice.createGroup()
    expect(await alice.addUsers(second, ['bob'])).toMatchObject({ kind: 'committed', added: ['bob/phone'] })
    // Exactly the two KeyPackages the two adds used are gone.
    expect(await bob.directory.countKeyPackages()).toEqual({ oneTime: 1, lastResort: true })
    await joined(bob, first.groupId)
    await joined(bob, second.groupId)
  })

  it('Sybil draining: fresh identities cannot empty bob’s one-time pool, and alice can still add bob afterwards', async () => {
    const proc = await server()
    const bob = await client(proc.url, 'bob', 'phone')
    const alice = await client(proc.url, 'alice')
    expect(await bob.publishKeyPackages({ count: 199 })).toEqual({ oneTime: 199, lastResort: true })

    let identities = 0
    let served = 0
    for (let i = 0; i < 40; i++) {
      let sybil: MlsClient
      try {
        // The attacker sees each refusal at once: no waiting out RATE_LIMITED as an honest client's pacing does.
        sybil = await client(proc.url, `sybil${i}`, 'x', undefined, { rateLimitRetries: 0 })
      } catch (error) {
        // Registration is limited per source address.
        expect(error).toMatchObject({ code: 'RATE_LIMITED' })
        break
      }
      identities++
      for (;;) {
        try {
          served += (await sybil.directory.fetchKeyPackages('bob')).length
        } catch (error) {
          expect(error).toMatchObject({ code: 'RATE_LIMITED' })
          break
        }
      }
    }
    expect(identities).toBeGreaterThan(1)
    expect(served).toBeGreaterThan(100)
    // The documented budget: at most 20 one-time KeyPackages of one user per burst (plus 10 a minute).
    const { oneTime } = await bob.directory.countKeyPackages()
    expect(oneTime).toBeGreaterThanOrEqual(199 - 25)

    // The last-resort KeyPackage still lets alice add bob.
    const group = await alice.createGroup()
    expect(await alice.addUsers(group, ['bob'])).toMatchObject({ kind: 'committed', added: ['bob/phone'] })
    await joined(bob, group.groupId)
  })

  it('confusable ids: alice\\u200b/laptop and other invisible or non-NFC ids are refused by the client and by the server', async () => {
    const proc = await server()
    await client(proc.url, 'alice')
    for (const userId of ['alice\u200b', 'alice\u202e', 'ali\u0000ce', 'cafe\u0301', 'alice\u00ad', 'alice\ufeff']) {
      await expect(client(proc.url, userId)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
      // A client that skips the checks: the server refuses the registration itself.
      const suite: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'
      const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(suite))
      const keys = await cs.signature.keygen()
      const clientId = `${userId}/laptop`
      await expect(
        transport(proc.url).connect({
          clientId,
          signaturePublicKey: keys.publicKey,
          ciphersuite: suite,
          register: true,
          signChallenge: (challenge, binding) => signChallenge(challenge, clientId, keys.signKey, cs, binding)
        })
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    }
  })
})
