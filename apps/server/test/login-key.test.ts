import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { createMlsClient, toHex, type MlsClient, type MlsClientInit } from '@mls/core'
import type { ClientStore } from '@mls/core/interfaces'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { failoverFront, freePort, publicUrlArgs, startServerProcess, type ServerProcess } from './harness.js'
import type { Cleanups } from './fixtures.js'

const crypto = nodeCrypto()
const cleanups: Cleanups = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mls-login-key-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function serverOn(dir: string, args: string[] = [], port = 0): Promise<ServerProcess> {
  const proc = await startServerProcess(dir, port, args)
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill('SIGKILL')
  })
  return proc
}

/** What the server logged at start: its login key and its external-sender key (hex). */
function startedKeys(proc: ServerProcess): { loginKey: string; serverKey: string } {
  const started = proc.logs.find((record) => record.event === 'server:started')
  return { loginKey: started?.loginKey as string, serverKey: started?.serverKey as string }
}

/** The store across client restarts within a test: `MlsClient.close()` closes its store. */
function keepOpen(store: ClientStore): ClientStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'close') return async () => undefined
      const value = Reflect.get(target, property, receiver) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    }
  })
}

async function client(url: string, store: ClientStore, options: Partial<MlsClientInit> = {}): Promise<MlsClient> {
  const created = await createMlsClient({
    userId: 'alice',
    deviceId: 'laptop',
    crypto,
    store,
    start: false,
    transport: webSockets({ url, WebSocket, reconnect: { enabled: false }, loginRetries: 0 }),
    ...options
  })
  cleanups.push(() => created.close())
  return created
}

const hex = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : toHex(bytes))

describe('one persisted server key: the login key survives restarts and clients pin it', () => {
  it('the same key after a restart (no report); a replaced key file is reported, and refused by a client that refuses changes', async () => {
    const dir = dataDir()
    const store = keepOpen(memoryClientStore({ name: 'alice/laptop' }))
    const first = await serverOn(dir)
    const keys = startedKeys(first)
    expect(keys.loginKey).toMatch(/^[0-9a-f]{64}$/)
    // Derived from the one key file, and a key of its own: never the external-sender key.
    expect(keys.loginKey).not.toBe(keys.serverKey)
    const alice = await client(first.url, store, { serverLoginKeyChange: 'refuse' })
    await alice.start()
    expect(hex(alice.serverLoginKey)).toBe(keys.loginKey)
    await alice.close()
    await first.kill('SIGTERM')

    // Same data dir: the same login key, so the pinned client logs in without a report.
    const second = await serverOn(dir)
    expect(startedKeys(second)).toEqual(keys)
    const again = await client(second.url, store, { serverLoginKeyChange: 'refuse' })
    const reports: unknown[] = []
    again.on('server:login-key-changed', (event) => reports.push(event))
    await again.start()
    expect(reports).toEqual([])
    expect(hex(again.serverLoginKey)).toBe(keys.loginKey)
    await again.close()
    await second.kill('SIGTERM')

    // The key file replaced (lost and made anew): another login key.
    unlinkSync(join(dir, 'server-key.json'))
    const third = await serverOn(dir)
    const replaced = startedKeys(third)
    expect(replaced.loginKey).not.toBe(keys.loginKey)

    // A client that refuses changes does not sign the login: typed error and event, nothing reaches the server's login.
    const refusing = await client(third.url, store, { serverLoginKeyChange: 'refuse' })
    const changed: { code: string; reason: unknown; pinned: string; presented: string }[] = []
    refusing.on('server:login-key-changed', (event) =>
      changed.push({ code: event.error.code, reason: event.error.details?.reason, pinned: toHex(event.pinned), presented: toHex(event.presented) })
    )
    await expect(refusing.start()).rejects.toMatchObject({ code: 'SERVER_KEY_CHANGED', details: { reason: 'login-key-changed' } })
    expect(changed).toEqual([{ code: 'SERVER_KEY_CHANGED', reason: 'login-key-changed', pinned: keys.loginKey, presented: replaced.loginKey }])
    expect(third.logs.some((record) => record.event === 'connection:authenticated')).toBe(false)
    expect(hex(refusing.serverLoginKey)).toBe(keys.loginKey)
    await refusing.close()

    // The default reports and logs in anyway, keeping the pin.
    const reporting = await client(third.url, store)
    const reported: string[] = []
    reporting.on('server:login-key-changed', (event) => reported.push(toHex(event.presented)))
    await reporting.start()
    expect(reported).toEqual([replaced.loginKey])
    expect(hex(reporting.serverLoginKey)).toBe(keys.loginKey)
    // The app accepts the new key: the next login pins it.
    await reporting.forgetServerLoginKey()
    expect(reporting.serverLoginKey).toBeUndefined()
    await reporting.close()
    const accepted = await client(third.url, store, { serverLoginKeyChange: 'refuse' })
    await accepted.start()
    expect(hex(accepted.serverLoginKey)).toBe(replaced.loginKey)
  })

  it('an unknown serverLoginKeyChange is refused before anything is stored', async () => {
    const store = memoryClientStore({ name: 'bad-option' })
    await expect(
      createMlsClient({ userId: 'alice', deviceId: 'laptop', crypto, store, start: false, transport: webSockets({ url: 'ws://127.0.0.1:1/', WebSocket }), serverLoginKeyChange: 'sometimes' as 'refuse' })
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(await store.list('')).toEqual([])
  })

  it('a key file whose public key does not match its private key stops the server with exit code 4', async () => {
    const dir = dataDir()
    const first = await serverOn(dir)
    await first.kill('SIGTERM')
    const path = join(dir, 'server-key.json')
    const file = JSON.parse(readFileSync(path, 'utf8')) as { signaturePublicKey: string }
    file.signaturePublicKey = Buffer.alloc(32, 7).toString('base64')
    writeFileSync(path, JSON.stringify(file))
    await expect(startServerProcess(dir)).rejects.toThrow(/server exited \(4\)[\s\S]*does not hold a matching Ed25519 key pair/)
  })
})

/**
 * A malicious server: each client that connects gets the real server's
 * CHALLENGE (key and proof untouched), and its AUTHENTICATE goes on to the
 * real server. Frames pass through unread.
 */
async function relayTo(target: string): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  wss.on('connection', (victim) => {
    const upstream = new WebSocket(target)
    const early: Buffer[] = []
    upstream.on('open', () => early.splice(0).forEach((data) => upstream.send(data)))
    upstream.on('message', (data: Buffer) => victim.send(data))
    victim.on('message', (data: Buffer) => (upstream.readyState === WebSocket.OPEN ? upstream.send(data) : early.push(data)))
    victim.on('close', () => upstream.close())
    upstream.on('close', (code, reason) => victim.close(code, reason))
    upstream.on('error', () => undefined)
  })
  cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())))
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}/`
}

describe('a login relayed to the real apps/server process fails', () => {
  it('a relay passing the real server’s challenge through cannot log in as its victim (server-binding); the victim dialling the server logs in', async () => {
    const server = await serverOn(dataDir())
    const relay = await relayTo(server.url)
    const victim = await client(relay, memoryClientStore({ name: 'victim' }))
    await expect(victim.start()).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED', details: { reason: 'server-binding' } })
    // The server saw the login and refused it as made for another server.
    const refused = server.logs.find((record) => record.event === 'connection:login-for-another-server')
    expect(refused).toMatchObject({ clientId: 'alice/laptop', serverUrl: relay })
    expect(server.logs.some((record) => record.event === 'connection:authenticated')).toBe(false)
    await victim.close()

    const direct = await client(server.url, memoryClientStore({ name: 'direct' }))
    await direct.start()
    expect(server.logs.some((record) => record.event === 'connection:authenticated' && record.clientId === 'alice/laptop')).toBe(true)
  })

  it('a proxy in front of the server fails the login unless the server lists its URL (--public-url)', async () => {
    const port = await freePort()
    const front = await failoverFront([port])
    cleanups.push(() => front.close())
    const unlisted = await serverOn(dataDir(), [], port)
    const behind = await client(front.url, memoryClientStore({ name: 'behind' }))
    await expect(behind.start()).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED', details: { reason: 'server-binding' } })
    expect(unlisted.logs.find((record) => record.event === 'connection:login-for-another-server')).toMatchObject({ serverUrl: front.url })
    await behind.close()
    await unlisted.kill('SIGTERM')

    // The same proxy, with its URL given to the server: the login goes through.
    await serverOn(dataDir(), publicUrlArgs(port, [front]), port)
    const listed = await client(front.url, memoryClientStore({ name: 'listed' }))
    await listed.start()
    expect(listed.connectionState).toBe('online')
  })
})
