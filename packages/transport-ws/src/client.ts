import type {
  AbortOptions,
  ChannelEntry,
  ChannelEvent,
  ClientId,
  Connection,
  ServerExternalSender,
  DirectoryClient,
  GroupChannelClient,
  SessionCredentials,
  Transport,
  WelcomeEntry
} from '@mls/contracts/interfaces'
import { MlsToolkitError, ServiceError, TransportError, UsageError, type ErrorCode } from '@mls/contracts'
import {
  CloseCode,
  MAX_REQUEST_ID,
  ProtocolError,
  decodeServerFrame,
  encodeClientFrame,
  normalizeServerUrl,
  serverProofContent,
  type Request,
  type Response,
  type ServerFrame
} from './codec.js'
import type { WebSocketConstructor, WebSocketLike, WebSocketsInit } from './client-options.js'

const TRANSPORT_CODES = new Set([
  'TRANSPORT_PROTOCOL',
  'TRANSPORT_CLOSED',
  'TRANSPORT_TIMEOUT',
  'TRANSPORT_UNAVAILABLE',
  'NOT_AUTHENTICATED',
  'UNSUPPORTED_PROTOCOL_VERSION',
  'TOO_MANY_CONNECTIONS'
])
const FATAL_CODES = new Set(['AUTHENTICATION_FAILED', 'UNKNOWN_IDENTITY', 'IDENTITY_CONFLICT', 'UNSUPPORTED_PROTOCOL_VERSION', 'UNSUPPORTED_CIPHERSUITE', 'INVALID_ARGUMENT'])
const FATAL_CLOSE_CODES = new Set<number>([CloseCode.unsupportedVersion, CloseCode.authenticationRefused])
const DEFAULT_FETCH_LIMIT = 500

/**
 * A login refused because its challenge was no longer pending (expired, or
 * evicted by a flood of other connections) says nothing about the client:
 * a new connection gets a new challenge. Servers mark it `details.reason`.
 */
function isChallengeExpired(error: unknown): boolean {
  return MlsToolkitError.isInstance(error) && error.code === 'AUTHENTICATION_FAILED' && error.details?.['reason'] === 'challenge-expired'
}

/** A refusal no new attempt can change: bad key, unknown or conflicting identity, unsupported version or suite. */
function isFatalLoginFailure(error: unknown): boolean {
  if (isChallengeExpired(error)) return false
  const code = MlsToolkitError.isInstance(error) ? error.code : undefined
  const closeCode = MlsToolkitError.isInstance(error) ? error.details?.['closeCode'] : undefined
  return (code !== undefined && FATAL_CODES.has(code)) || (typeof closeCode === 'number' && FATAL_CLOSE_CODES.has(closeCode))
}

function errorFromFrame(code: string, message: string, details: Record<string, unknown> | undefined): MlsToolkitError {
  const options = details === undefined ? {} : { details }
  return TRANSPORT_CODES.has(code) ? new TransportError(code as ErrorCode, message, options) : new ServiceError(code as ErrorCode, message, options)
}

/** A server answer that cannot be right (pages that do not advance): reported, never looped on. */
function misbehaving(text: string, details: Record<string, unknown>): ServiceError {
  return new ServiceError('SERVER_MISBEHAVING', `The server misbehaves: ${text}`, { details: { reason: 'no-progress', ...details } })
}

function errorCodeOf(error: unknown): string | undefined {
  return MlsToolkitError.isInstance(error) ? error.code : undefined
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return undefined
}

type ResponseOf<T extends Request['type']> = Extract<Response, { type: T }>

interface Pending {
  readonly request: Request
  resolve(response: Response): void
  reject(error: unknown): void
  requestId: number
}

interface Options {
  readonly url: string
  /** `url` as signed into the login. */
  readonly serverUrl: string
  /** A pinned server key: any other refuses the server (`AUTHENTICATION_FAILED`). */
  readonly serverKey: Uint8Array | undefined
  readonly WebSocket: WebSocketConstructor
  readonly requestTimeoutMs: number
  readonly heartbeatIntervalMs: number
  readonly reconnect: { readonly enabled: boolean; readonly initialDelayMs: number; readonly maxDelayMs: number; readonly jitter: number }
  readonly loginRetries: number
}

/**
 * Check the server's proof of its key (an Ed25519 signature of the challenge).
 * `undefined` when it holds, else why not. Where WebCrypto has no Ed25519 the
 * proof is not checked; the login is still bound to the URL and the key.
 */
async function checkServerProof(frame: Extract<ServerFrame, { kind: 'challenge' }>, pinned: Uint8Array | undefined): Promise<string | undefined> {
  if (pinned !== undefined && !equalKeys(pinned, frame.serverKey)) return 'the server presented another key than the pinned one'
  if (frame.serverKey.length !== 32) return 'the server key is not an Ed25519 key'
  const subtle = globalThis.crypto?.subtle
  let key: CryptoKey
  try {
    key = await subtle.importKey('raw', frame.serverKey.slice(), { name: 'Ed25519' }, false, ['verify'])
  } catch {
    return pinned === undefined ? undefined : 'Ed25519 is not available to check the pinned server key'
  }
  const valid = await subtle.verify({ name: 'Ed25519' }, key, frame.serverSignature.slice(), new Uint8Array(serverProofContent(frame.challenge))).catch(() => false)
  return valid ? undefined : 'the server did not prove its key'
}

function equalKeys(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index])
}

const TLS_ERROR = /SSL|TLS|EPROTO|certificate|CERT_|self.signed/i

/**
 * Name the underlying failure of a connection attempt (what `ws` reports
 * before the close): refused, no such host, an HTTP answer that is not a
 * WebSocket upgrade, or TLS to a server that does not speak it.
 */
function describeSocketError(error: unknown, url: string): { text: string; details: Record<string, unknown> } {
  const code = typeof (error as { code?: unknown } | null)?.code === 'string' ? ((error as { code: string }).code) : undefined
  const message = error instanceof Error ? error.message : String(error)
  const status = /Unexpected server response: (\d+)/.exec(message)
  if (status !== null) {
    const httpStatus = Number(status[1])
    return { text: `the server answered HTTP ${httpStatus} instead of a WebSocket upgrade (wrong URL or path, or not a WebSocket server)`, details: { httpStatus } }
  }
  if (code === 'ECONNREFUSED') return { text: 'connection refused (ECONNREFUSED): is the server running on that host and port?', details: { cause: code } }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    const host = (() => {
      try {
        return new URL(url).hostname
      } catch {
        return url
      }
    })()
    return { text: `cannot resolve the host ${host} (${code})`, details: { cause: code } }
  }
  if (TLS_ERROR.test(`${code ?? ''} ${message}`)) {
    return { text: `TLS handshake failed (${code ?? message}): use ws:// if the server does not speak TLS`, details: { cause: code ?? 'TLS' } }
  }
  return { text: code === undefined ? message : `${message} (${code})`, details: code === undefined ? {} : { cause: code } }
}

/** One socket's life: handshake, then frames until it closes. */
class Socket {
  private phase: 'challenge' | 'authenticate' | 'open' | 'dead' = 'challenge'
  readonly ws: WebSocketLike
  maxFrameBytes = 0xffffffff
  /** The server's external sender, as its CHALLENGE advertised it. */
  externalSender: ServerExternalSender | undefined
  private readonly ready: Promise<void>
  private settle: { resolve(): void; reject(error: unknown): void } | undefined

  constructor(
    private readonly options: Options,
    private readonly credentials: SessionCredentials,
    private readonly register: boolean,
    private readonly handlers: { frame(frame: ServerFrame): void; lost(code: number, reason: string): void },
    signal: AbortSignal | undefined
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject }
    })
    const fail = (error: unknown): void => {
      if (this.phase === 'dead' || this.phase === 'open') return
      this.phase = 'dead'
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      try {
        this.ws.close(CloseCode.normal)
      } catch {
        // the socket may not be open yet
      }
      this.settle?.reject(error)
    }
    const timer = setTimeout(
      () => fail(new TransportError('TRANSPORT_TIMEOUT', `No authenticated connection to ${options.url} within ${options.requestTimeoutMs} ms`)),
      options.requestTimeoutMs
    )
    const onAbort = (): void => fail(new TransportError('ABORTED', 'The connection attempt was aborted', { cause: signal?.reason }))
    signal?.addEventListener('abort', onAbort)
    this.failHandshake = fail
    this.finishHandshake = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      this.phase = 'open'
      this.settle?.resolve()
    }
    try {
      this.ws = new options.WebSocket(options.url)
      // `ws` hands Node Buffers without a copy; browsers only know 'arraybuffer' (and warn on anything else).
      const isBrowserSocket = typeof globalThis.WebSocket === 'function' && this.ws instanceof globalThis.WebSocket
      this.ws.binaryType = isBrowserSocket ? 'arraybuffer' : 'nodebuffer'
      if (this.ws.binaryType !== 'nodebuffer') this.ws.binaryType = 'arraybuffer'
    } catch (cause) {
      this.ws = undefined as unknown as WebSocketLike
      fail(new TransportError('TRANSPORT_UNAVAILABLE', `Cannot open a WebSocket to ${options.url}`, { cause }))
      return
    }
    this.ws.onmessage = ((event: { data: unknown }) => this.onMessage(event.data)) as (event: never) => void
    this.ws.onclose = ((event: { code: number; reason: string }) => this.onClose(event.code, event.reason)) as (event: never) => void
    // `ws` hands the underlying failure (an ErrorEvent with `error`) just before the close; browsers hide it.
    this.ws.onerror = ((event: { error?: unknown; message?: unknown } | undefined) => {
      this.socketError = event?.error ?? (typeof event?.message === 'string' && event.message !== '' ? new Error(event.message) : undefined)
    }) as (event: never) => void
    if (signal?.aborted === true) onAbort()
  }

  private readonly failHandshake: (error: unknown) => void
  private readonly finishHandshake: () => void
  /** True once the server's challenge arrived: the server was reached, so a failure after it is a failed login. */
  challenged = false
  private handshakeError: unknown
  private socketError: unknown

  opened(): Promise<void> {
    return this.ready
  }

  get open(): boolean {
    return this.phase === 'open'
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes)
  }

  /** Stop listening and close; the session handles the loss itself. */
  drop(code: number, reason: string): void {
    const wasOpen = this.phase === 'open'
    this.phase = 'dead'
    try {
      this.ws.close(code, reason)
    } catch {
      // Browsers let a script close only with 1000 or 3000-4999 (InvalidAccessError
      // for 1003 and the like); close with 1000 then, or the socket stays open.
      try {
        this.ws.close(CloseCode.normal, reason)
      } catch {
        // already closing
      }
    }
    if (wasOpen) this.handlers.lost(code, reason)
  }

  private onMessage(data: unknown): void {
    if (this.phase === 'dead') return
    const bytes = toBytes(data)
    let frame: ServerFrame
    try {
      if (bytes === undefined) throw new ProtocolError('TRANSPORT_PROTOCOL', 'The server sent a text message')
      frame = decodeServerFrame(bytes)
    } catch (error) {
      if (this.phase === 'open') this.drop(CloseCode.unsupportedData, 'Malformed frame')
      else this.failHandshake(error)
      return
    }
    if (this.phase === 'open') {
      this.handlers.frame(frame)
      return
    }
    if (frame.kind === 'error') {
      const error = errorFromFrame(frame.code, frame.message, frame.details)
      this.handshakeError = error
      if (this.phase === 'authenticate' || FATAL_CODES.has(frame.code) || frame.code === 'TOO_MANY_CONNECTIONS') this.failHandshake(error)
      return
    }
    if (this.phase === 'challenge' && frame.kind === 'challenge') {
      this.phase = 'authenticate'
      this.challenged = true
      this.maxFrameBytes = frame.maxFrameBytes
      this.externalSender = frame.externalSender
      const { clientId, signaturePublicKey, ciphersuite } = this.credentials
      const serverUrl = this.options.serverUrl
      checkServerProof(frame, this.options.serverKey)
        .then((refusal) => {
          if (refusal !== undefined) throw new TransportError('AUTHENTICATION_FAILED', `${this.options.url}: ${refusal}`, { details: { reason: 'server-key' } })
          return this.credentials.signChallenge(frame.challenge.slice(), { serverUrl, serverKey: frame.serverKey.slice() })
        })
        .then(
        (signature) => {
          if (this.phase !== 'authenticate') return
          try {
            this.ws.send(encodeClientFrame(1, { type: 'authenticate', clientId, signaturePublicKey, ciphersuite, register: this.register, signature, serverUrl }))
          } catch (error) {
            this.failHandshake(error)
          }
        },
        (error: unknown) => this.failHandshake(error)
      )
      return
    }
    if (this.phase === 'authenticate' && frame.kind === 'response' && frame.response.type === 'authenticate') {
      if (frame.response.clientId !== this.credentials.clientId) {
        this.failHandshake(new TransportError('TRANSPORT_PROTOCOL', `The server authenticated ${frame.response.clientId}, not ${this.credentials.clientId}`))
        return
      }
      this.maxFrameBytes = frame.response.maxFrameBytes
      this.finishHandshake()
      return
    }
    this.failHandshake(new TransportError('TRANSPORT_PROTOCOL', `Unexpected ${frame.kind} frame during the handshake`))
  }

  private onClose(code: number, reason: string): void {
    if (this.phase === 'dead') return
    if (this.phase === 'open') {
      this.phase = 'dead'
      this.handlers.lost(code, reason)
      return
    }
    if (this.handshakeError !== undefined) {
      this.failHandshake(this.handshakeError)
      return
    }
    const cause = this.socketError === undefined ? undefined : describeSocketError(this.socketError, this.options.url)
    this.failHandshake(
      new TransportError(
        FATAL_CLOSE_CODES.has(code) ? 'TRANSPORT_CLOSED' : 'TRANSPORT_UNAVAILABLE',
        cause === undefined
          ? `The connection to ${this.options.url} closed during the handshake (${code}${reason === '' ? '' : ` ${reason}`})`
          : `Cannot connect to ${this.options.url}: ${cause.text} (${code})`,
        { details: { closeCode: code, ...cause?.details }, ...(this.socketError === undefined ? {} : { cause: this.socketError }) }
      )
    )
  }
}

class Session implements Connection {
  readonly clientId: ClientId
  readonly externalSender: ServerExternalSender | undefined
  readonly directory: DirectoryClient
  readonly channel: GroupChannelClient
  private socket: Socket | undefined
  private state: 'open' | 'reconnecting' | 'closed' = 'open'
  private closedBy: unknown
  private nextRequestId = 2
  private readonly pending = new Map<number, Pending>()
  private readonly waiting = new Set<Pending>()
  private readonly listeners = new Set<(event: ChannelEvent) => void>()
  private reconnectAttempt = 0
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined
  private heartbeatInFlight = false

  constructor(
    private readonly options: Options,
    private readonly credentials: SessionCredentials,
    socket: Socket
  ) {
    this.clientId = credentials.clientId
    this.externalSender = socket.externalSender
    this.socket = socket
    this.startHeartbeat()
    this.directory = {
      uploadKeyPackages: async (request, o) => {
        const r = await this.call({ type: 'uploadKeyPackages', keyPackages: request.keyPackages, lastResort: request.lastResort }, o)
        return { oneTime: r.oneTime, lastResort: r.lastResort }
      },
      fetchKeyPackages: async (userId, o) => [...(await this.call({ type: 'fetchKeyPackages', userId }, o)).keyPackages],
      lookupIdentity: async (clientId, o) => (await this.call({ type: 'lookupIdentity', clientId }, o)).identity,
      countKeyPackages: async (o) => {
        const r = await this.call({ type: 'countKeyPackages' }, o)
        return { oneTime: r.oneTime, lastResort: r.lastResort }
      },
      fetchDeviceList: async (userId, o) => [...(await this.call({ type: 'fetchDeviceList', userId }, o)).entries],
      publishDeviceListEntry: async (entry, o) => ({ version: (await this.call({ type: 'publishDeviceListEntry', entry }, o)).version })
    }
    this.channel = {
      createGroup: async (groupId, request, o) => {
        await this.call({ type: 'createGroup', groupId, groupInfo: request.groupInfo }, o)
      },
      postCommit: async (groupId, request, o) =>
        (await this.call({ type: 'postCommit', groupId, epoch: request.epoch, commit: request.commit, welcome: request.welcome, groupInfo: request.groupInfo }, o))
          .result,
      postMessage: async (groupId, message, o) => ({ seq: (await this.call({ type: 'postMessage', groupId, message }, o)).seq }),
      fetchEntries: (groupId, afterSeq, o) =>
        this.paged<ChannelEntry>(o, async (from, limit) => {
          const r = await this.call({ type: 'fetchEntries', groupId, afterSeq: from, limit }, o)
          return { items: r.entries, more: r.more }
        }, afterSeq),
      postProposal: async (groupId, proposal, o) => ({ seq: (await this.call({ type: 'postProposal', groupId, proposal }, o)).seq }),
      fetchGroupInfo: async (groupId, o) => (await this.call({ type: 'fetchGroupInfo', groupId }, o)).groupInfo,
      fetchWelcomes: (afterSeq, o) =>
        this.paged<WelcomeEntry>(o, async (from, limit) => {
          const r = await this.call({ type: 'fetchWelcomes', afterSeq: from, limit }, o)
          return { items: r.welcomes, more: r.more }
        }, afterSeq),
      subscribe: (listener) => {
        const wrapped = (event: ChannelEvent): void => listener(event)
        this.listeners.add(wrapped)
        return () => {
          this.listeners.delete(wrapped)
        }
      }
    }
  }

  async close(): Promise<void> {
    this.shutdown(new TransportError('TRANSPORT_CLOSED', 'The connection is closed'))
  }

  /** The handlers a socket of this session reports to. */
  readonly handlers = {
    frame: (frame: ServerFrame): void => this.onFrame(frame),
    lost: (code: number, reason: string): void => this.onLost(code, reason)
  }

  private shutdown(error: unknown): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.closedBy = error
    clearTimeout(this.reconnectTimer)
    this.stopHeartbeat()
    const socket = this.socket
    this.socket = undefined
    socket?.drop(CloseCode.normal, 'Closed by the client')
    const all = [...this.pending.values(), ...this.waiting]
    this.pending.clear()
    this.waiting.clear()
    for (const p of all) p.reject(new TransportError('TRANSPORT_CLOSED', 'The connection is closed', { cause: error }))
    this.listeners.clear()
  }

  private async paged<T extends { seq: number }>(
    options: (AbortOptions & { limit?: number }) | undefined,
    fetchPage: (afterSeq: number, limit: number) => Promise<{ items: readonly T[]; more: boolean }>,
    afterSeq: number
  ): Promise<T[]> {
    const limit = options?.limit ?? DEFAULT_FETCH_LIMIT
    const out: T[] = []
    let cursor = afterSeq
    for (;;) {
      const asked = limit - out.length
      const page = await fetchPage(cursor, asked)
      // Every item must come after the cursor, in order, and no more than asked: otherwise the pages never end.
      let previous = cursor
      for (const item of page.items) {
        if (!(item.seq > previous)) throw misbehaving(`a page after seq ${cursor} holds seq ${item.seq} after ${previous}`, { cursor, seq: item.seq })
        previous = item.seq
      }
      if (page.items.length > asked) throw misbehaving(`a page of ${page.items.length} items answered a request for ${asked}`, { cursor, count: page.items.length, limit: asked })
      out.push(...page.items)
      const last = page.items.at(-1)
      if (!page.more || last === undefined || out.length >= limit) return out
      cursor = last.seq
    }
  }

  private call<T extends Request['type']>(request: Extract<Request, { type: T }>, options: AbortOptions | undefined): Promise<ResponseOf<T>> {
    return new Promise<ResponseOf<T>>((resolve, reject) => {
      if (this.state === 'closed') {
        reject(new TransportError('TRANSPORT_CLOSED', 'The connection is closed', { cause: this.closedBy }))
        return
      }
      const signal = options?.signal
      if (signal?.aborted === true) {
        reject(new TransportError('ABORTED', 'The request was aborted', { cause: signal.reason }))
        return
      }
      const finish = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.pending.delete(pending.requestId)
        this.waiting.delete(pending)
      }
      const pending: Pending = {
        request,
        requestId: 0,
        resolve: (response) => {
          finish()
          if (response.type === request.type) resolve(response as ResponseOf<T>)
          else reject(new TransportError('TRANSPORT_PROTOCOL', `A ${response.type} response answered a ${request.type} request`))
        },
        reject: (error) => {
          finish()
          reject(error)
        }
      }
      const timer = setTimeout(
        () => pending.reject(new TransportError('TRANSPORT_TIMEOUT', `No response to ${request.type} within ${this.options.requestTimeoutMs} ms`)),
        this.options.requestTimeoutMs
      )
      const onAbort = (): void => pending.reject(new TransportError('ABORTED', 'The request was aborted', { cause: signal?.reason }))
      signal?.addEventListener('abort', onAbort)
      if (this.state === 'open') this.transmit(pending)
      else this.waiting.add(pending)
    })
  }

  private transmit(pending: Pending): void {
    const socket = this.socket
    if (socket === undefined || !socket.open) {
      this.waiting.add(pending)
      return
    }
    const requestId = this.nextRequestId
    this.nextRequestId = requestId >= MAX_REQUEST_ID ? 1 : requestId + 1
    let bytes: Uint8Array
    try {
      bytes = encodeClientFrame(requestId, pending.request)
    } catch (error) {
      pending.reject(error)
      return
    }
    if (bytes.length > socket.maxFrameBytes) {
      pending.reject(
        new TransportError('PAYLOAD_TOO_LARGE', `The ${pending.request.type} frame is ${bytes.length} bytes; the server accepts at most ${socket.maxFrameBytes}`, {
          details: { size: bytes.length, limit: socket.maxFrameBytes }
        })
      )
      return
    }
    pending.requestId = requestId
    this.pending.set(requestId, pending)
    try {
      socket.send(bytes)
    } catch (cause) {
      pending.reject(new TransportError('TRANSPORT_UNAVAILABLE', 'The request could not be sent', { cause }))
    }
  }

  private onFrame(frame: ServerFrame): void {
    switch (frame.kind) {
      case 'response':
        this.pending.get(frame.requestId)?.resolve(frame.response)
        return
      case 'error':
        if (frame.requestId !== 0) this.pending.get(frame.requestId)?.reject(errorFromFrame(frame.code, frame.message, frame.details))
        return
      case 'entry':
        this.emit({ type: 'entry:appended', entry: frame.entry })
        return
      case 'welcome':
        this.emit({ type: 'welcome:appended', entry: frame.entry })
        return
      case 'challenge':
        this.socket?.drop(CloseCode.unsupportedData, 'Unexpected challenge')
        return
    }
  }

  private emit(event: ChannelEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event)
      } catch {
        // a failing listener must not break delivery to the others
      }
    }
  }

  private onLost(code: number, reason: string): void {
    if (this.state !== 'open') return
    this.socket = undefined
    this.stopHeartbeat()
    const inFlight = [...this.pending.values()]
    this.pending.clear()
    for (const p of inFlight) {
      p.reject(new TransportError('TRANSPORT_UNAVAILABLE', `The connection was lost (${code}${reason === '' ? '' : ` ${reason}`}) before ${p.request.type} was answered`, { details: { closeCode: code } }))
    }
    if (FATAL_CLOSE_CODES.has(code) || !this.options.reconnect.enabled) {
      this.shutdown(new TransportError('TRANSPORT_CLOSED', `The server closed the connection (${code} ${reason})`, { details: { closeCode: code } }))
      return
    }
    this.state = 'reconnecting'
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    const { initialDelayMs, maxDelayMs, jitter } = this.options.reconnect
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(this.reconnectAttempt, 30))
    const delay = base * (1 - jitter * Math.random())
    this.reconnectAttempt++
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delay)
  }

  private async reconnect(): Promise<void> {
    if (this.state !== 'reconnecting') return
    const socket = new Socket(this.options, this.credentials, false, this.handlers, undefined)
    try {
      await socket.opened()
    } catch (error) {
      if (this.state !== 'reconnecting') return
      if (isFatalLoginFailure(error)) this.shutdown(error)
      else this.scheduleReconnect()
      return
    }
    if (this.state !== 'reconnecting') {
      socket.drop(CloseCode.normal, 'Closed by the client')
      return
    }
    if (!socket.open) {
      this.scheduleReconnect()
      return
    }
    this.socket = socket
    this.state = 'open'
    this.reconnectAttempt = 0
    this.startHeartbeat()
    const waiting = [...this.waiting]
    this.waiting.clear()
    for (const p of waiting) this.transmit(p)
    this.emit({ type: 'connection:restored' })
  }

  private startHeartbeat(): void {
    const interval = this.options.heartbeatIntervalMs
    if (interval <= 0) return
    this.heartbeatTimer = setInterval(() => {
      if (this.state !== 'open' || this.heartbeatInFlight) return
      const socket = this.socket
      this.heartbeatInFlight = true
      const timeout = setTimeout(() => {
        if (this.socket === socket && this.state === 'open') socket?.drop(CloseCode.heartbeatLost, 'Heartbeat lost')
      }, interval)
      this.call({ type: 'ping' }, undefined)
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(timeout)
          this.heartbeatInFlight = false
        })
    }, interval)
    ;(this.heartbeatTimer as { unref?: () => void }).unref?.()
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = undefined
    this.heartbeatInFlight = false
  }
}

class WebSocketTransport implements Transport {
  readonly specificationVersion = 'v1' as const
  readonly [Symbol.toStringTag] = 'WebSocketTransport'
  private readonly options: Options

  constructor(init: WebSocketsInit) {
    if (typeof init?.url !== 'string' || !/^wss?:\/\//i.test(init.url)) throw new UsageError('INVALID_ARGUMENT', `A ws:// or wss:// url is required, got ${String(init?.url)}`)
    const WebSocketClass = init.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (WebSocketClass === undefined) {
      throw new UsageError('INVALID_ARGUMENT', "No global WebSocket here (Node 20): pass one, e.g. webSockets({ url, WebSocket }) with WebSocket from 'ws'")
    }
    const positive = (value: number | undefined, fallback: number, name: string, allowZero = false): number => {
      const v = value ?? fallback
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw new UsageError('INVALID_ARGUMENT', `${name} must be a positive number`)
      return v
    }
    const jitter = init.reconnect?.jitter ?? 0.5
    if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw new UsageError('INVALID_ARGUMENT', 'reconnect.jitter must be between 0 and 1')
    this.options = {
      url: init.url,
      serverUrl: normalizeServerUrl(init.url),
      serverKey: init.serverKey === undefined ? undefined : init.serverKey.slice(),
      WebSocket: WebSocketClass,
      requestTimeoutMs: positive(init.requestTimeoutMs, 30_000, 'requestTimeoutMs'),
      heartbeatIntervalMs: positive(init.heartbeatIntervalMs, 20_000, 'heartbeatIntervalMs', true),
      loginRetries: (() => {
        const retries = init.loginRetries ?? 3
        if (!Number.isSafeInteger(retries) || retries < 0) throw new UsageError('INVALID_ARGUMENT', 'loginRetries must be a non-negative integer')
        return retries
      })(),
      reconnect: {
        enabled: init.reconnect?.enabled ?? true,
        initialDelayMs: positive(init.reconnect?.initialDelayMs, 250, 'reconnect.initialDelayMs', true),
        maxDelayMs: positive(init.reconnect?.maxDelayMs, 10_000, 'reconnect.maxDelayMs'),
        jitter
      }
    }
  }

  /**
   * Open a socket and log in. A login that failed for a transient reason is
   * tried again on a new socket (a new challenge), with backoff, up to
   * `loginRetries` times: the connection dropped after the challenge arrived,
   * or the server no longer held the challenge (`challenge-expired`). A
   * refusal of the client itself and a server that cannot be reached fail at once.
   */
  private async login(credentials: SessionCredentials, handlers: ConstructorParameters<typeof Socket>[3], options: AbortOptions | undefined): Promise<Socket> {
    const { initialDelayMs, maxDelayMs, jitter } = this.options.reconnect
    for (let attempt = 0; ; attempt++) {
      const socket = new Socket(this.options, credentials, credentials.register, handlers, options?.signal)
      try {
        await socket.opened()
        return socket
      } catch (error) {
        const code = errorCodeOf(error)
        // Dropped mid-login: the socket closed after the challenge, without the server refusing anything.
        const dropped = socket.challenged && (code === 'TRANSPORT_UNAVAILABLE' || code === 'TRANSPORT_CLOSED') && !isFatalLoginFailure(error)
        const transient = isChallengeExpired(error) || dropped
        if (!transient || attempt >= this.options.loginRetries || options?.signal?.aborted === true) throw error
        await pause(Math.min(maxDelayMs, Math.max(initialDelayMs, 1) * 2 ** attempt) * (1 - jitter * Math.random()), options?.signal)
      }
    }
  }

  async connect(credentials: SessionCredentials, options?: AbortOptions): Promise<Connection> {
    // Frames that arrive in the same tick as AUTHENTICATED wait for the session.
    const attached: { session?: Session } = {}
    const early: ((session: Session) => void)[] = []
    const handlers = {
      frame: (frame: ServerFrame) => (attached.session === undefined ? early.push((s) => s.handlers.frame(frame)) : attached.session.handlers.frame(frame)),
      lost: (code: number, reason: string) =>
        attached.session === undefined ? early.push((s) => s.handlers.lost(code, reason)) : attached.session.handlers.lost(code, reason)
    }
    const socket = await this.login(credentials, handlers, options)
    const opened = new Session(this.options, credentials, socket)
    attached.session = opened
    for (const run of early) run(opened)
    return opened
  }
}

/** Wait `delayMs`, or less when `signal` aborts. */
function pause(delayMs: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, delayMs)
    function done(): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done)
  })
}

/**
 * A `Transport` over WebSocket, speaking protocol version 2 (docs/protocol.md)
 * to a `webSocketServer` from `@mls/transport-ws/server`. It reconnects with
 * exponential backoff and jitter, authenticates again, and tells channel
 * subscribers `{ type: 'connection:restored' }` so core resumes from its cursors.
 */
export function webSockets(init: WebSocketsInit): Transport {
  return new WebSocketTransport(init)
}
