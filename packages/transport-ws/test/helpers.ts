import { WebSocket } from 'ws'
import { createMlsClient, credentialFor, signChallenge, tsMlsDefaultCrypto, type Group, type MlsClient } from '@mls/core'
import {
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName
} from '@mls/core/mls'
import type { ClientStore, Connection, ServerStore, SessionCredentials, Transport } from '@mls/core/interfaces'
import { createServices, type ServiceLimits, type Services } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { tcpProxy, type TcpProxy } from '@mls/scenarios'
import { webSockets, type WebSocketsInit } from '../src/index.js'
import { normalizeServerUrl, type Request } from '../src/codec.js'
import { webSocketServer, type WebSocketServerHandle, type WebSocketServerInit, type WebSocketServerLimits } from '../src/server.js'

export const crypto = tsMlsDefaultCrypto()

export interface WsNetworkInit {
  limits?: Partial<WebSocketServerLimits>
  serviceLimits?: Partial<ServiceLimits>
  store?: ServerStore
  tap?: WebSocketServerInit['tap']
  client?: Partial<WebSocketsInit>
  publicUrls?: WebSocketServerInit['publicUrls']
}

export type WsNetwork = Awaited<ReturnType<typeof createWsNetwork>>

/** A real `ws` server on loopback over in-memory services, and clients over real sockets. */
export async function createWsNetwork(init: WsNetworkInit = {}) {
  const store = init.store ?? memoryServerStore()
  const services: Services = createServices({ store, crypto, ...(init.serviceLimits === undefined ? {} : { limits: init.serviceLimits }) })
  // Clients may dial this server through a TCP proxy on another loopback port (net.proxy()): those URLs are this server's too.
  const server: WebSocketServerHandle = await webSocketServer({
    services,
    publicUrls: init.publicUrls ?? ((serverUrl) => serverUrl.startsWith('ws://127.0.0.1:')),
    ...(init.limits === undefined ? {} : { limits: init.limits }),
    ...(init.tap === undefined ? {} : { tap: init.tap })
  })
  const clients: MlsClient[] = []
  const proxies: TcpProxy[] = []

  const transport = (url = server.url, extra: Partial<WebSocketsInit> = {}) =>
    webSockets({ url, WebSocket, reconnect: { initialDelayMs: 20, maxDelayMs: 250, jitter: 0.5 }, requestTimeoutMs: 15_000, ...init.client, ...extra })

  async function client(
    userId: string,
    options: { store?: ClientStore; viaProxy?: TcpProxy; deviceId?: string; onConnection?: (connection: Connection) => void } = {}
  ): Promise<MlsClient> {
    const url = options.viaProxy === undefined ? server.url : options.viaProxy.url
    const inner = transport(url)
    const onConnection = options.onConnection
    const observed: Transport =
      onConnection === undefined
        ? inner
        : {
            specificationVersion: inner.specificationVersion,
            [Symbol.toStringTag]: 'ObservedTransport',
            connect: async (credentials, o) => {
              const connection = await inner.connect(credentials, o)
              onConnection(connection)
              return connection
            }
          }
    const c = await createMlsClient({
      userId,
      deviceId: options.deviceId ?? 'phone',
      crypto,
      store: options.store ?? memoryClientStore({ name: userId }),
      transport: observed
    })
    clients.push(c)
    return c
  }

  async function proxy(): Promise<TcpProxy> {
    const p = await tcpProxy(server.port)
    proxies.push(p)
    return p
  }

  async function close(): Promise<void> {
    await Promise.allSettled(clients.map((c) => c.close()))
    for (const p of proxies) await p.close()
    await server.close()
  }

  return { services, store, server, transport, client, proxy, close }
}

export { tcpProxy, type TcpProxy }
export { converged, groupWith, joined, waitFor } from '@mls/scenarios'

export function inbox(group: Group): { texts: string[]; from: string[]; seqs: (number | undefined)[] } {
  const box = { texts: [] as string[], from: [] as string[], seqs: [] as (number | undefined)[] }
  group.on('message:received', (m) => {
    box.texts.push(new TextDecoder().decode(m.plaintext))
    box.from.push(m.sender)
    box.seqs.push(m.seq)
  })
  return box
}

/** Open a raw `ws` socket and collect what the server sends. */
export async function rawSocket(url: string, options?: { localAddress?: string }): Promise<RawSocket> {
  const ws = new WebSocket(url, options)
  const frames: Uint8Array[] = []
  const waiters: (() => void)[] = []
  let closeCode: number | undefined
  ws.binaryType = 'nodebuffer'
  ws.on('message', (data: Buffer) => {
    frames.push(new Uint8Array(data))
    waiters.splice(0).forEach((w) => w())
  })
  ws.on('close', (code) => {
    closeCode = code
    waiters.splice(0).forEach((w) => w())
  })
  ws.on('error', () => undefined)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const raw: RawSocket = {
    ws,
    frames,
    get closeCode() {
      return closeCode
    },
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      while (frames.length === 0 && closeCode === undefined) {
        const left = deadline - Date.now()
        if (left <= 0) return undefined
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left)
          waiters.push(() => {
            clearTimeout(t)
            resolve()
          })
        })
      }
      return frames.shift()
    },
    send(bytes: Uint8Array) {
      ws.send(bytes)
    },
    close() {
      ws.terminate()
    }
  }
  return raw
}

export interface RawSocket {
  readonly ws: WebSocket
  readonly frames: Uint8Array[]
  readonly closeCode: number | undefined
  /** The next frame, or undefined on close or timeout. */
  next(timeoutMs?: number): Promise<Uint8Array | undefined>
  send(bytes: Uint8Array): void
  close(): void
}

/** Fresh credentials for `clientId` with a new signature key (suite 1). */
export async function credentialsFor(clientId: string, register = true): Promise<SessionCredentials & { signaturePrivateKey: Uint8Array }> {
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  const keys = await cs.signature.keygen()
  return {
    clientId,
    signaturePublicKey: keys.publicKey,
    signaturePrivateKey: keys.signKey,
    ciphersuite: SUITE,
    register,
    signChallenge: (challenge, binding) => signChallenge(challenge, clientId, keys.signKey, cs, binding)
  }
}

export const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/** The AUTHENTICATE a client would send on a raw socket for `challenge` (a CHALLENGE frame) from the server it dialled at `url`. */
export async function authenticateRequest(
  creds: SessionCredentials,
  challenge: { readonly challenge: Uint8Array; readonly serverKey: Uint8Array },
  url: string,
  register = true
): Promise<Extract<Request, { type: 'authenticate' }>> {
  const serverUrl = normalizeServerUrl(url)
  const signature = await creds.signChallenge(challenge.challenge, { serverUrl, serverKey: challenge.serverKey })
  return { type: 'authenticate', clientId: creds.clientId, signaturePublicKey: creds.signaturePublicKey, ciphersuite: creds.ciphersuite, register, signature, serverUrl }
}

/** The signed GroupInfo of a new one-member group of `creds` (what `createGroup` needs), as an MLSMessage. */
export async function newGroupInfo(creds: { clientId: string; signaturePublicKey: Uint8Array; signaturePrivateKey: Uint8Array }, groupId: Uint8Array): Promise<Uint8Array> {
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  const kp = await generateKeyPackageWithKey(credentialFor(creds.clientId), defaultCapabilities(), defaultLifetime, [], { publicKey: creds.signaturePublicKey, signKey: creds.signaturePrivateKey }, cs)
  const state = await createGroup(groupId, kp.publicPackage, kp.privatePackage, [], cs)
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs)
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo })
}

/** A server store that records every byte string and string handed to it (what the server stores). */
export function recordingStore(store: ServerStore, captured: Uint8Array[]): ServerStore {
  const walk = (value: unknown, depth: number): void => {
    if (depth > 6 || value === null || value === undefined) return
    if (value instanceof Uint8Array) captured.push(value.slice())
    else if (typeof value === 'string') captured.push(new TextEncoder().encode(value))
    else if (Array.isArray(value)) for (const v of value) walk(v, depth + 1)
    else if (typeof value === 'object') for (const v of Object.values(value)) walk(v, depth + 1)
  }
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        walk(args, 0)
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    }
  })
}

/** Whether `needle` occurs in any of `haystack`. */
export function occursIn(haystack: readonly Uint8Array[], needle: Uint8Array): boolean {
  const n = Buffer.from(needle)
  return haystack.some((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength).indexOf(n) !== -1)
}
