import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import {
  createAddEntry,
  createClaimEntry,
  createDeviceLinkRequest,
  createMlsClient,
  signChallenge,
  type CiphersuiteName,
  type ContactChange,
  type DeviceSigner,
  type MlsClient,
  type MlsClientInit
} from '@mls/core'
import { getCiphersuiteFromName } from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { joined } from '@mls/scenarios'
import { startServerProcess, type ServerProcess } from './harness.js'

// Linked devices and the app's authentication hook, against the real server process.

const crypto = nodeCrypto()
const cleanups: (() => Promise<void> | void)[] = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function server(extraArgs: (dir: string) => string[] = () => []): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'mls-devices-'))
  const proc = await startServerProcess(dir, 0, extraArgs(dir))
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  return proc
}

async function client(url: string, userId: string, deviceId: string, extra: Partial<MlsClientInit> = {}): Promise<MlsClient> {
  const c = await createMlsClient({
    userId,
    deviceId,
    crypto,
    store: memoryClientStore({ name: `${userId}/${deviceId}` }),
    transport: webSockets({ url, WebSocket, reconnect: { enabled: false } }),
    ...extra
  })
  cleanups.push(() => c.close())
  return c
}

function changes(c: MlsClient): ContactChange[] {
  const out: ContactChange[] = []
  c.on('contact:changed', (change) => out.push(change))
  return out
}

describe('linked devices end to end', () => {
  it('a second device joins only once a listed device approves it, and leaves the list when removed; contacts see both changes', async () => {
    const proc = await server()
    const phone = await client(proc.url, 'alice', 'phone')
    const laptop = await client(proc.url, 'alice', 'laptop')
    const bob = await client(proc.url, 'bob', 'phone')
    const seenByBob = changes(bob)
    for (const c of [phone, laptop]) await c.publishKeyPackages({ count: 3 })

    // Not yet linked: the laptop is registered but is no device of alice.
    expect((await bob.deviceList('alice')).devices.map((d) => d.clientId)).toEqual(['alice/phone'])
    const before = await bob.fingerprint('alice')
    expect(before).toMatch(/^\d{5}( \d{5}){5}$/)
    const g1 = await bob.createGroup()
    expect(await bob.addUsers(g1, ['alice'])).toMatchObject({ kind: 'committed', added: ['alice/phone'], skipped: [] })
    // An unlisted device cannot approve anyone, not even itself.
    await expect(laptop.linkDevice(await laptop.linkRequest())).rejects.toMatchObject({ code: 'INVALID_STATE' })

    // The phone approves the laptop's link request (carried out of band, e.g. as a QR code).
    const linked = await phone.linkDevice(await laptop.linkRequest())
    expect(linked.devices.map((d) => d.clientId)).toEqual(['alice/laptop', 'alice/phone'])
    const g2 = await bob.createGroup()
    const added = await bob.addUsers(g2, ['alice'])
    expect(added.kind).toBe('committed')
    if (added.kind === 'committed') expect([...added.added].sort()).toEqual(['alice/laptop', 'alice/phone'])
    await joined(laptop, g2.groupId)
    expect(seenByBob).toMatchObject([{ userId: 'alice', kind: 'devices-changed', added: ['alice/laptop'], removed: [], previousFingerprint: before }])
    // Safety numbers: bob and alice's own devices compute the same one.
    const after = await bob.fingerprint('alice')
    expect(after).not.toBe(before)
    expect(await phone.fingerprint('alice')).toBe(after)
    expect(await laptop.fingerprint()).toBe(after)

    // Removing the laptop: bob no longer adds it.
    expect((await phone.removeDevice('alice/laptop')).devices.map((d) => d.clientId)).toEqual(['alice/phone'])
    const g3 = await bob.createGroup()
    expect(await bob.addUsers(g3, ['alice'])).toMatchObject({ kind: 'committed', added: ['alice/phone'] })
    expect(seenByBob[1]).toMatchObject({ userId: 'alice', kind: 'devices-changed', added: [], removed: ['alice/laptop'] })
  })

  it('an outsider cannot get its device into another user’s list: its own signed add entry is refused by the server', async () => {
    const proc = await server()
    const bob = await client(proc.url, 'bob', 'phone')
    const list = await bob.deviceList()
    // The attacker registers bob/evil with its own key, skipping the client library, and signs an add of it.
    const suite: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(suite))
    const keys = await cs.signature.keygen()
    const clientId = 'bob/evil'
    const connection = await webSockets({ url: proc.url, WebSocket, reconnect: { enabled: false } }).connect({
      clientId,
      signaturePublicKey: keys.publicKey,
      ciphersuite: suite,
      register: true,
      signChallenge: (challenge, binding) => signChallenge(challenge, clientId, keys.signKey, cs, binding)
    })
    cleanups.push(() => connection.close())
    const signer: DeviceSigner = { device: { clientId, signaturePublicKey: keys.publicKey, ciphersuite: suite }, signaturePrivateKey: keys.signKey, cs }
    const suites = async () => cs
    const request = await createDeviceLinkRequest('bob', signer)
    const selfSigned = await createAddEntry(list, request, signer, suites)
    await expect(connection.directory.publishDeviceListEntry(selfSigned)).rejects.toMatchObject({ code: 'DEVICE_LIST_INVALID' })
    // A second claim of bob is refused too.
    await expect(connection.directory.publishDeviceListEntry(await createClaimEntry('bob', signer))).rejects.toMatchObject({ code: 'DEVICE_LIST_CONFLICT' })
    // Bob's list is unchanged, as bob verifies it.
    expect((await bob.deviceList()).devices.map((d) => d.clientId)).toEqual(['bob/phone'])
    expect((await bob.deviceList()).version).toBe(1)
  })
})

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url')
}

/** An ES256 JWT as an app's login server would issue it. */
function token(key: KeyObject, claims: Record<string, unknown>): string {
  const header = base64url(JSON.stringify({ alg: 'ES256', typ: 'JWT' }))
  const payload = base64url(JSON.stringify({ iat: Math.floor(Date.now() / 1000), iss: 'login.example', ...claims }))
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' })
  return `${header}.${payload}.${base64url(signature)}`
}

describe('an app-supplied authentication hook (JWT from the app login server)', () => {
  it('accepts a claim with a valid token for that user and refuses missing, foreign, forged and mismatched tokens', async () => {
    const login = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const proc = await server((dir) => {
      const path = join(dir, 'login.pem')
      writeFileSync(path, login.publicKey.export({ type: 'spki', format: 'pem' }))
      return ['--auth-jwt-public-key', path, '--auth-jwt-issuer', 'login.example']
    })
    expect(proc.logs.find((l) => l.event === 'server:started')).toMatchObject({ authentication: 'jwt' })

    const refused = [
      { userId: 'bob', deviceId: 'nothing' },
      { userId: 'bob', deviceId: 'mallory', claimProof: () => token(login.privateKey, { sub: 'mallory' }) },
      { userId: 'bob', deviceId: 'forged', claimProof: () => token(other.privateKey, { sub: 'bob' }) },
      { userId: 'bob', deviceId: 'issuer', claimProof: () => token(login.privateKey, { sub: 'bob', iss: 'elsewhere' }) },
      { userId: 'bob', deviceId: 'garbage', claimProof: () => new Uint8Array([1, 2, 3]) }
    ]
    for (const { userId, deviceId, claimProof } of refused) {
      await expect(client(proc.url, userId, deviceId, claimProof === undefined ? {} : { claimProof })).rejects.toMatchObject({ code: 'CLAIM_REFUSED' })
    }

    const bob = await client(proc.url, 'bob', 'phone', { claimProof: () => token(login.privateKey, { sub: 'bob' }) })
    const alice = await client(proc.url, 'alice', 'laptop', { claimProof: () => token(login.privateKey, { sub: 'alice' }) })
    expect((await alice.deviceList('bob')).devices.map((d) => d.clientId)).toEqual(['bob/phone'])
    await bob.publishKeyPackages({ count: 1 })
    const group = await alice.createGroup()
    expect(await alice.addUsers(group, ['bob'])).toMatchObject({ kind: 'committed', added: ['bob/phone'] })
    await joined(bob, group.groupId)
  })
})
