import { createPrivateKey, createPublicKey, sign as signBytes, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { MlsToolkitError, UsageError, equalBytes } from '@mls/contracts'
import type { ChannelEntry, ChannelEvent, ClientId } from '@mls/contracts/interfaces'
import type { Services } from '@mls/server'
import {
  CloseCode,
  HEADER_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeClientFrame,
  encodeChallenge,
  encodeEntryPush,
  encodeError,
  encodeResponse,
  encodeWelcomePush,
  encodedEntryBytes,
  encodedWelcomeBytes,
  peekRequestId,
  normalizeServerUrl,
  serverProofContent,
  type Request,
  type Response
} from './codec.js'
import { TokenBucket } from './token-bucket.js'
import {
  resolveServerLimits,
  type WebSocketServerHandle,
  type WebSocketServerInit,
  type WebSocketServerLimits,
  type WebSocketServerLogger,
  type WebSocketServerStats
} from './server-options.js'

export type { WebSocketServerHandle, WebSocketServerInit, WebSocketServerLimits, WebSocketServerLogger, WebSocketServerStats } from './server-options.js'
export { CloseCode, PROTOCOL_VERSION } from './codec.js'

const RECEIVER_CLOSE_CODES = new Set([1002, 1007, 1009])

/** The part of `ws`'s frame receiver whose payload limit is raised after login (ws 8.18.3, pinned). */
interface FrameReceiver {
  _maxPayload: number
}

/**
 * A `ws` socket that answers the receiver's own refusals (oversized or broken
 * frames) with an ERROR before closing, and whose frame limit starts small
 * (`maxUnauthenticatedFrameBytes`) until the connection has logged in.
 */
class ProtocolWebSocket extends WebSocket {
  onReceiverClose: ((code: number) => void) | undefined
  static initialMaxPayload = 0

  /** Called by `WebSocketServer.handleUpgrade` (not in ws's types): starts the receiver with the small limit. */
  setSocket(socket: Duplex, head: Buffer, options: Record<string, unknown>): void {
    const limit = (this.constructor as typeof ProtocolWebSocket).initialMaxPayload
    const base = WebSocket.prototype as unknown as { setSocket(socket: Duplex, head: Buffer, options: Record<string, unknown>): void }
    base.setSocket.call(this, socket, head, limit > 0 ? { ...options, maxPayload: limit } : options)
  }

  /** Raise the frame limit (after login). */
  setMaxPayload(bytes: number): void {
    const receiver = (this as unknown as { _receiver?: FrameReceiver })._receiver
    if (receiver !== undefined) receiver._maxPayload = bytes
  }

  override close(code?: number, data?: string | Buffer): void {
    const hook = this.onReceiverClose
    if (hook !== undefined && code !== undefined && data === undefined && RECEIVER_CLOSE_CODES.has(code) && this.readyState === WebSocket.OPEN) {
      this.onReceiverClose = undefined
      hook(code)
      super.close(code, code === 1009 ? 'Frame too large' : 'Protocol error')
      return
    }
    super.close(code, data)
  }
}

type ConnectionState = 'challenged' | 'authenticating' | 'authenticated' | 'closed'

interface Counters {
  framesReceived: number
  responsesSent: number
  pushesSent: number
  errorFramesSent: number
  protocolErrors: number
  rateLimited: number
  slowConsumersDropped: number
  internalErrors: number
  closesByCode: Record<number, number>
}

/** The server's Ed25519 key: it signs every connection's challenge, and clients sign their login for it. */
interface ServerKey {
  readonly privateKey: KeyObject
  readonly publicKey: Uint8Array
}

const ED25519_PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20])

function serverKeyFrom(seed: Uint8Array | undefined): ServerKey {
  const bytes = seed ?? globalThis.crypto.getRandomValues(new Uint8Array(32))
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw new UsageError('INVALID_ARGUMENT', 'serverKey must be a 32-byte Ed25519 private key')
  const der = new Uint8Array(ED25519_PKCS8_PREFIX.length + 32)
  der.set(ED25519_PKCS8_PREFIX)
  der.set(bytes, ED25519_PKCS8_PREFIX.length)
  const privateKey = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  return { privateKey, publicKey: new Uint8Array(Buffer.from(String(jwk.x), 'base64url')) }
}

class Hub {
  readonly connections = new Set<Connection>()
  /** Unauthenticated connections per source address. */
  readonly unauthenticated = new Map<string, number>()
  publicUrls: (serverUrl: string) => boolean = () => false
  readonly byIdentity = new Map<ClientId, Set<Connection>>()
  readonly identityBuckets = new Map<ClientId, TokenBucket>()
  readonly counters: Counters = {
    framesReceived: 0,
    responsesSent: 0,
    pushesSent: 0,
    errorFramesSent: 0,
    protocolErrors: 0,
    rateLimited: 0,
    slowConsumersDropped: 0,
    internalErrors: 0,
    closesByCode: {}
  }
  private lastPush: { entry: ChannelEntry; bytes: Uint8Array } | undefined

  constructor(
    readonly services: Services,
    readonly limits: WebSocketServerLimits,
    readonly logger: WebSocketServerLogger,
    readonly tap: WebSocketServerInit['tap'],
    readonly serverKey: ServerKey
  ) {}

  /** Count an unauthenticated connection of `source`; false when its address already holds the most allowed. */
  admitUnauthenticated(source: string): boolean {
    const count = this.unauthenticated.get(source) ?? 0
    if (count >= this.limits.maxUnauthenticatedPerAddress) return false
    this.unauthenticated.set(source, count + 1)
    return true
  }

  releaseUnauthenticated(source: string): void {
    const count = (this.unauthenticated.get(source) ?? 1) - 1
    if (count <= 0) this.unauthenticated.delete(source)
    else this.unauthenticated.set(source, count)
  }

  /** Every reader of an entry gets the same event data; encode it once. */
  entryFrame(entry: ChannelEntry): Uint8Array {
    const last = this.lastPush
    if (last !== undefined && last.entry.seq === entry.seq && equalBytes(last.entry.groupId, entry.groupId)) return last.bytes
    const bytes = encodeEntryPush(entry)
    this.lastPush = { entry, bytes }
    return bytes
  }

  identityBucket(clientId: ClientId): TokenBucket {
    let bucket = this.identityBuckets.get(clientId)
    if (bucket === undefined) {
      bucket = new TokenBucket(this.limits.identityRequestsPerSecond, this.limits.identityRequestBurst)
      this.identityBuckets.set(clientId, bucket)
    }
    return bucket
  }

  attach(connection: Connection, clientId: ClientId): boolean {
    let set = this.byIdentity.get(clientId)
    if (set === undefined) this.byIdentity.set(clientId, (set = new Set()))
    if (set.size >= this.limits.maxConnectionsPerIdentity) return false
    set.add(connection)
    return true
  }

  detach(connection: Connection): void {
    this.connections.delete(connection)
    const clientId = connection.clientId
    if (clientId === undefined) return
    const set = this.byIdentity.get(clientId)
    set?.delete(connection)
    if (set?.size === 0) {
      this.byIdentity.delete(clientId)
      this.identityBuckets.delete(clientId)
    }
  }
}

class Connection {
  state: ConnectionState = 'challenged'
  clientId: ClientId | undefined
  alive = true
  /** Highest seq pushed per group (hex) since the last ping. */
  private readonly pushedSincePing = new Map<string, { groupId: Uint8Array; seq: number }>()
  /** Pushed before the ping in flight: the client received them once that ping's pong comes back (TCP keeps the order). */
  private readonly pushedBeforePing = new Map<string, { groupId: Uint8Array; seq: number }>()
  private pings = 0
  private readonly challenge: Uint8Array
  private readonly bucket: TokenBucket
  private inFlight = 0
  private protocolErrors = 0
  private unsubscribe: (() => void) | undefined
  private authTimer: ReturnType<typeof setTimeout> | undefined
  private killTimer: ReturnType<typeof setTimeout> | undefined
  /** Counted in `Hub.unauthenticated` until login or close. */
  private countedUnauthenticated = true

  constructor(
    private readonly hub: Hub,
    readonly socket: ProtocolWebSocket,
    readonly remote: string,
    /** The peer's IP address: registrations are limited per source. */
    readonly source: string | undefined
  ) {
    const { limits } = hub
    this.bucket = new TokenBucket(limits.requestsPerSecond, limits.requestBurst)
    this.challenge = hub.services.auth.challenge()
    socket.onReceiverClose = (code) => {
      this.protocolErrorCount()
      if (code === 1009) {
        const limit = this.state === 'authenticated' ? limits.maxFrameBytes : limits.maxUnauthenticatedFrameBytes
        this.sendError(0, 'PAYLOAD_TOO_LARGE', `A frame is limited to ${limit} bytes${this.state === 'authenticated' ? '' : ' before login'}`, { limit })
      }
      else this.sendError(0, 'TRANSPORT_PROTOCOL', 'Invalid WebSocket frame')
    }
    socket.on('message', (data, isBinary) => this.onMessage(data, isBinary))
    socket.on('pong', (data) => {
      this.alive = true
      if (data.toString() === String(this.pings)) this.confirmPushes()
    })
    socket.on('error', (error) => hub.logger.debug?.('connection:error', { remote, clientId: this.clientId, error: error.message }))
    socket.on('close', (code) => this.onClose(code))
    this.authTimer = setTimeout(() => {
      if (this.state === 'challenged' || this.state === 'authenticating') {
        this.sendError(0, 'NOT_AUTHENTICATED', `Not authenticated within ${limits.authenticationTimeoutMs} ms`)
        this.close(CloseCode.authenticationTimeout, 'Authentication timeout')
      }
    }, limits.authenticationTimeoutMs)
    this.authTimer.unref?.()
    const proof = new Uint8Array(signBytes(null, serverProofContent(this.challenge), hub.serverKey.privateKey))
    this.send(encodeChallenge(this.challenge, limits.maxUnauthenticatedFrameBytes, hub.serverKey.publicKey, proof, hub.services.externalSender))
  }

  private releaseUnauthenticated(): void {
    if (!this.countedUnauthenticated) return
    this.countedUnauthenticated = false
    this.hub.releaseUnauthenticated(this.source ?? this.remote)
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return
    this.teardown()
    this.socket.onReceiverClose = undefined
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(code, reason)
    this.killTimer = setTimeout(() => this.socket.terminate(), 1000)
    this.killTimer.unref?.()
  }

  private teardown(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    clearTimeout(this.authTimer)
    this.releaseUnauthenticated()
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.hub.detach(this)
  }

  private onClose(code: number): void {
    clearTimeout(this.killTimer)
    const counters = this.hub.counters
    counters.closesByCode[code] = (counters.closesByCode[code] ?? 0) + 1
    this.hub.logger.debug?.('connection:closed', { remote: this.remote, clientId: this.clientId, code })
    this.teardown()
  }

  private send(bytes: Uint8Array): boolean {
    if (this.socket.readyState !== WebSocket.OPEN) return false
    if (this.socket.bufferedAmount > this.hub.limits.maxBufferedBytes || this.identityBuffered() > this.hub.limits.maxBufferedBytesPerIdentity) {
      this.hub.counters.slowConsumersDropped++
      this.hub.logger.warn?.('connection:slow-consumer', { remote: this.remote, clientId: this.clientId, bufferedAmount: this.socket.bufferedAmount })
      this.close(CloseCode.slowConsumer, 'Slow consumer')
      return false
    }
    this.socket.send(bytes, { binary: true })
    this.hub.tap?.({ direction: 'out', bytes, clientId: this.clientId })
    return true
  }

  /** Bytes queued, unread, across every connection of this connection's identity. */
  private identityBuffered(): number {
    const clientId = this.clientId
    if (clientId === undefined) return this.socket.bufferedAmount
    let total = 0
    for (const connection of this.hub.byIdentity.get(clientId) ?? []) total += connection.socket.bufferedAmount
    return total
  }

  private sendError(requestId: number, code: string, message: string, details?: Record<string, unknown>): void {
    if (this.send(encodeError(requestId, code, message, details))) this.hub.counters.errorFramesSent++
  }

  private respond(requestId: number, response: Response): void {
    if (this.send(encodeResponse(requestId, response))) this.hub.counters.responsesSent++
  }

  /** Counts a broken frame; returns false once the connection has been closed for too many. */
  private protocolErrorCount(): boolean {
    this.hub.counters.protocolErrors++
    this.protocolErrors++
    return this.protocolErrors < this.hub.limits.maxProtocolErrors
  }

  private refuse(requestId: number, code: string, message: string, details?: Record<string, unknown>): void {
    this.sendError(requestId, code, message, details)
    if (!this.protocolErrorCount()) this.close(CloseCode.tooManyProtocolErrors, 'Too many protocol errors')
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') return
    this.hub.counters.framesReceived++
    const bytes = toBytes(data)
    if (isBinary) this.hub.tap?.({ direction: 'in', bytes, clientId: this.clientId })
    if (!isBinary) {
      this.protocolErrorCount()
      this.sendError(0, 'TRANSPORT_PROTOCOL', 'Text messages are not part of the protocol; frames are binary')
      this.close(CloseCode.unsupportedData, 'Binary frames only')
      return
    }
    const wait = Math.max(this.bucket.take(), this.clientId === undefined ? 0 : this.hub.identityBucket(this.clientId).take())
    if (wait > 0) {
      this.hub.counters.rateLimited++
      this.sendError(peekRequestId(bytes), 'RATE_LIMITED', `Too many requests; retry in ${wait} ms`, { retryAfterMs: wait })
      return
    }
    let requestId: number
    let request: Request
    try {
      ;({ requestId, request } = decodeClientFrame(bytes))
    } catch (error) {
      if (error instanceof ProtocolError && error.code === 'UNSUPPORTED_PROTOCOL_VERSION') {
        this.protocolErrorCount()
        this.sendError(error.requestId, error.code, error.message, error.details)
        this.close(CloseCode.unsupportedVersion, 'Unsupported protocol version')
      } else if (error instanceof ProtocolError) {
        this.refuse(error.requestId, error.code, error.message)
      } else {
        this.hub.counters.internalErrors++
        this.hub.logger.error?.('frame:decode-failed', { remote: this.remote, error: String(error) })
        this.sendError(peekRequestId(bytes), 'INTERNAL', 'Internal server error')
      }
      return
    }
    if (request.type === 'authenticate') {
      if (this.state !== 'challenged') {
        this.refuse(requestId, 'INVALID_STATE', this.state === 'authenticated' ? 'The connection is already authenticated' : 'Authentication is in progress')
        return
      }
      this.authenticate(requestId, request)
      return
    }
    if (this.state !== 'authenticated') {
      this.refuse(requestId, 'NOT_AUTHENTICATED', 'Authenticate first: the only request accepted before authentication is AUTHENTICATE')
      return
    }
    if (this.inFlight >= this.hub.limits.maxInFlightRequests) {
      this.hub.counters.rateLimited++
      this.sendError(requestId, 'RATE_LIMITED', `At most ${this.hub.limits.maxInFlightRequests} requests in flight per connection`, { retryAfterMs: 10 })
      return
    }
    this.inFlight++
    this.dispatch(this.clientId as ClientId, request).then(
      (response) => {
        this.inFlight--
        if (this.state === 'authenticated') this.respond(requestId, response)
      },
      (error: unknown) => {
        this.inFlight--
        if (this.state === 'authenticated') this.fail(requestId, error)
      }
    )
  }

  private fail(requestId: number, error: unknown): void {
    if (MlsToolkitError.isInstance(error)) {
      this.sendError(requestId, error.code, error.message, error.details)
      return
    }
    this.hub.counters.internalErrors++
    this.hub.logger.error?.('request:failed', { remote: this.remote, clientId: this.clientId, error: error instanceof Error ? error.stack : String(error) })
    this.sendError(requestId, 'INTERNAL', 'Internal server error')
  }

  private authenticate(requestId: number, request: Extract<Request, { type: 'authenticate' }>): void {
    this.state = 'authenticating'
    const { clientId, signaturePublicKey, ciphersuite, register, signature, serverUrl } = request
    if (!this.hub.publicUrls(serverUrl)) {
      // A login signed for another URL: made for another server (a relay passing our challenge through), or a misconfigured --public-url.
      this.hub.logger.warn?.('connection:login-for-another-server', { remote: this.remote, clientId, serverUrl })
      this.sendError(requestId, 'AUTHENTICATION_FAILED', `The login was signed for ${serverUrl}, which is not this server`, { reason: 'server-binding', serverUrl })
      this.close(CloseCode.authenticationRefused, 'Authentication refused')
      return
    }
    const binding = { serverUrl, serverKey: this.hub.serverKey.publicKey }
    this.hub.services.auth.authenticate({ clientId, signaturePublicKey, ciphersuite, register, source: this.source, binding }, this.challenge, signature).then(
      (authenticated) => {
        if (this.state !== 'authenticating') return
        if (!this.hub.attach(this, authenticated)) {
          this.sendError(requestId, 'TOO_MANY_CONNECTIONS', `${authenticated} already holds ${this.hub.limits.maxConnectionsPerIdentity} connections`, {
            limit: this.hub.limits.maxConnectionsPerIdentity
          })
          this.close(CloseCode.tooManyConnections, 'Too many connections for this identity')
          return
        }
        this.clientId = authenticated
        this.state = 'authenticated'
        clearTimeout(this.authTimer)
        this.releaseUnauthenticated()
        this.socket.setMaxPayload(this.hub.limits.maxFrameBytes)
        this.unsubscribe = this.hub.services.subscribe(authenticated, (event) => this.push(event))
        this.hub.logger.info?.('connection:authenticated', { remote: this.remote, clientId: authenticated, register })
        this.respond(requestId, { type: 'authenticate', clientId: authenticated, maxFrameBytes: this.hub.limits.maxFrameBytes })
      },
      (error: unknown) => {
        if (this.state !== 'authenticating') return
        this.hub.logger.info?.('connection:authentication-refused', { remote: this.remote, clientId, code: MlsToolkitError.isInstance(error) ? error.code : 'INTERNAL' })
        this.fail(requestId, error)
        this.close(CloseCode.authenticationRefused, 'Authentication refused')
      }
    )
  }

  /** A heartbeat ping; what was pushed before it counts as received (retention's fetch cursors) once its pong is back. */
  ping(): void {
    for (const [key, pushed] of this.pushedSincePing) {
      if ((this.pushedBeforePing.get(key)?.seq ?? -1) < pushed.seq) this.pushedBeforePing.set(key, pushed)
    }
    this.pushedSincePing.clear()
    this.pings++
    this.socket.ping(String(this.pings))
  }

  private confirmPushes(): void {
    const clientId = this.clientId
    if (this.state !== 'authenticated' || clientId === undefined) return
    for (const { groupId, seq } of this.pushedBeforePing.values()) {
      try {
        this.hub.services.channel.confirmDelivered(clientId, groupId, seq)
      } catch (error) {
        this.hub.logger.debug?.('connection:confirm-failed', { clientId, error: error instanceof Error ? error.message : String(error) })
      }
    }
    this.pushedBeforePing.clear()
  }

  private push(event: ChannelEvent): void {
    if (this.state !== 'authenticated') return
    let bytes: Uint8Array
    if (event.type === 'entry:appended') bytes = this.hub.entryFrame(event.entry)
    else if (event.type === 'welcome:appended') bytes = encodeWelcomePush(event.entry)
    else return
    if (!this.send(bytes)) return
    this.hub.counters.pushesSent++
    if (event.type === 'entry:appended') {
      const key = Buffer.from(event.entry.groupId).toString('hex')
      if ((this.pushedSincePing.get(key)?.seq ?? -1) < event.entry.seq) this.pushedSincePing.set(key, { groupId: event.entry.groupId, seq: event.entry.seq })
    }
  }

  private async dispatch(caller: ClientId, request: Exclude<Request, { type: 'authenticate' }>): Promise<Response> {
    const { directory, channel } = this.hub.services
    switch (request.type) {
      case 'uploadKeyPackages': {
        const count = await directory.uploadKeyPackages(caller, {
          keyPackages: request.keyPackages,
          ...(request.lastResort === undefined ? {} : { lastResort: request.lastResort })
        })
        return { type: request.type, oneTime: count.oneTime, lastResort: count.lastResort }
      }
      case 'fetchKeyPackages':
        return { type: request.type, keyPackages: await directory.fetchKeyPackages(caller, request.userId) }
      case 'lookupIdentity':
        return { type: request.type, identity: await directory.lookupIdentity(caller, request.clientId) }
      case 'countKeyPackages': {
        const count = await directory.countKeyPackages(caller)
        return { type: request.type, oneTime: count.oneTime, lastResort: count.lastResort }
      }
      case 'createGroup':
        await channel.createGroup(caller, request.groupId, { groupInfo: request.groupInfo })
        return { type: request.type }
      case 'postCommit':
        return {
          type: request.type,
          result: await channel.postCommit(caller, request.groupId, {
            epoch: request.epoch,
            commit: request.commit,
            ...(request.welcome === undefined ? {} : { welcome: request.welcome }),
            ...(request.groupInfo === undefined ? {} : { groupInfo: request.groupInfo })
          })
        }
      case 'postMessage':
        return { type: request.type, seq: (await channel.postMessage(caller, request.groupId, request.message)).seq }
      case 'fetchEntries': {
        const entries = await channel.fetchEntries(caller, request.groupId, request.afterSeq, request.limit === 0 ? undefined : { limit: request.limit })
        const page = this.page(entries, encodedEntryBytes)
        return { type: request.type, entries: page, more: page.length < entries.length }
      }
      case 'fetchWelcomes': {
        const welcomes = await channel.fetchWelcomes(caller, request.afterSeq, request.limit === 0 ? undefined : { limit: request.limit })
        const page = this.page(welcomes, encodedWelcomeBytes)
        return { type: request.type, welcomes: page, more: page.length < welcomes.length }
      }
      case 'ping':
        return { type: request.type }
      case 'fetchDeviceList':
        return { type: request.type, entries: await directory.fetchDeviceList(caller, request.userId) }
      case 'publishDeviceListEntry':
        return { type: request.type, version: (await directory.publishDeviceListEntry(caller, request.entry)).version }
      case 'fetchGroupInfo':
        return { type: request.type, groupInfo: await channel.fetchGroupInfo(caller, request.groupId) }
      case 'postProposal':
        return { type: request.type, seq: (await channel.postProposal(caller, request.groupId, request.proposal)).seq }
    }
  }

  /** The longest prefix of `items` whose response fits a frame (at least one item). */
  private page<T>(items: readonly T[], size: (item: T) => number): T[] {
    let budget = this.hub.limits.maxFrameBytes - HEADER_BYTES - 5
    let count = 0
    for (const item of items) {
      budget -= size(item)
      if (budget < 0 && count > 0) break
      count++
    }
    return items.slice(0, count)
  }
}

const LOOPBACK_OR_ANY = new Set(['127.0.0.1', '::1', 'localhost', '0.0.0.0', '::'])

/** The URLs a login may be signed for: `init.publicUrls`, or the listening URL (and its loopback names when listening on loopback or every interface). */
function publicUrlsOf(init: WebSocketServerInit, host: string, port: number): (serverUrl: string) => boolean {
  const given = init.publicUrls
  if (typeof given === 'function') return (serverUrl) => given(serverUrl) === true
  const path = init.path ?? '/'
  const hosts = LOOPBACK_OR_ANY.has(host) ? ['127.0.0.1', '[::1]', 'localhost'] : [host.includes(':') ? `[${host}]` : host]
  const urls = new Set(given !== undefined && given.length > 0 ? given.map(normalizeServerUrl) : hosts.map((name) => normalizeServerUrl(`ws://${name}:${port}${path}`)))
  return (serverUrl) => urls.has(serverUrl)
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}

/**
 * Host `init.services` on a WebSocket server speaking protocol version 2
 * (docs/protocol.md). Resolves once listening.
 */
export async function webSocketServer(init: WebSocketServerInit): Promise<WebSocketServerHandle> {
  const limits = resolveServerLimits(init.services, init.limits)
  const logger = init.logger ?? {}
  const hub = new Hub(init.services, limits, logger, init.tap, serverKeyFrom(init.serverKey))
  const ServerWebSocket = class extends ProtocolWebSocket {}
  ServerWebSocket.initialMaxPayload = limits.maxUnauthenticatedFrameBytes
  const startedAt = Date.now()
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxFrameBytes,
    perMessageDeflate: false,
    WebSocket: ServerWebSocket
  })

  const handleHealth = (req: { method?: string | undefined; url?: string | undefined }, res: ServerResponse): boolean => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/health') return false
    const body = JSON.stringify({
      status: 'ok',
      protocolVersion: PROTOCOL_VERSION,
      connections: hub.connections.size,
      authenticated: [...hub.byIdentity.values()].reduce((n, s) => n + s.size, 0),
      uptimeMs: Date.now() - startedAt
    })
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body)
    return true
  }

  const owned = init.server === undefined
  const http: HttpServer =
    init.server ??
    createServer((req, res) => {
      if (!handleHealth(req, res)) res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }))
    })

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (init.path !== undefined && (req.url ?? '').split('?')[0] !== init.path) {
      if (owned) socket.destroy()
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`
      const protocolSocket = ws as ProtocolWebSocket
      // A refused socket may still send (an oversized frame makes ws emit 'error'): never let that go unhandled.
      protocolSocket.on('error', () => undefined)
      if (hub.connections.size >= limits.maxConnections) {
        protocolSocket.send(encodeError(0, 'TOO_MANY_CONNECTIONS', `The server holds ${limits.maxConnections} connections`))
        protocolSocket.close(CloseCode.tooManyConnections, 'Too many connections')
        return
      }
      const source = req.socket.remoteAddress ?? remote
      if (!hub.admitUnauthenticated(source)) {
        protocolSocket.send(
          encodeError(0, 'TOO_MANY_CONNECTIONS', `${source} holds ${limits.maxUnauthenticatedPerAddress} connections that have not logged in`, {
            limit: limits.maxUnauthenticatedPerAddress
          })
        )
        protocolSocket.close(CloseCode.tooManyConnections, 'Too many connections from this address')
        return
      }
      hub.connections.add(new Connection(hub, protocolSocket, remote, req.socket.remoteAddress))
      logger.debug?.('connection:opened', { remote })
    })
  }
  http.on('upgrade', onUpgrade)

  const heartbeat = setInterval(() => {
    for (const connection of hub.connections) {
      if (!connection.alive) {
        logger.info?.('connection:heartbeat-lost', { remote: connection.remote, clientId: connection.clientId })
        connection.socket.terminate()
        continue
      }
      connection.alive = false
      if (connection.socket.readyState === WebSocket.OPEN) connection.ping()
    }
  }, limits.heartbeatIntervalMs)
  heartbeat.unref?.()

  if (owned) {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject)
      http.listen(init.port ?? 0, init.host ?? '127.0.0.1', () => {
        http.off('error', reject)
        resolve()
      })
    })
  }
  const address = http.address() as AddressInfo | null
  const host = address?.address ?? init.host ?? '127.0.0.1'
  const port = address?.port ?? init.port ?? 0
  const url = `ws://${host.includes(':') ? `[${host}]` : host}:${port}${init.path ?? '/'}`
  hub.publicUrls = publicUrlsOf(init, host, port)
  logger.info?.('server:listening', { url })

  let closing: Promise<void> | undefined
  return {
    url,
    host,
    port,
    limits,
    serverKey: hub.serverKey.publicKey.slice(),
    handleHealth,
    stats: (): WebSocketServerStats => ({
      ...hub.counters,
      closesByCode: { ...hub.counters.closesByCode },
      connections: hub.connections.size,
      authenticated: [...hub.byIdentity.values()].reduce((n, s) => n + s.size, 0)
    }),
    close: () =>
      (closing ??= (async () => {
        clearInterval(heartbeat)
        http.off('upgrade', onUpgrade)
        const sockets = [...wss.clients]
        for (const connection of [...hub.connections]) connection.close(CloseCode.goingAway, 'Server shutting down')
        await Promise.all(
          sockets.map(
            (socket) =>
              new Promise<void>((resolve) => {
                if (socket.readyState === WebSocket.CLOSED) return resolve()
                socket.once('close', () => resolve())
                setTimeout(() => {
                  socket.terminate()
                  resolve()
                }, 1000).unref?.()
              })
          )
        )
        await new Promise<void>((resolve) => wss.close(() => resolve()))
        if (owned) {
          http.closeAllConnections?.()
          await new Promise<void>((resolve) => http.close(() => resolve()))
        }
        logger.info?.('server:closed', { url })
      })())
  }
}
