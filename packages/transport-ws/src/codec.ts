import type { ChannelEntry, FetchedKeyPackage, PostCommitResult, RegisteredIdentity, ServerExternalSender, WelcomeEntry } from '@mls/contracts/interfaces'
import { TransportError, UsageError } from '@mls/contracts'

/**
 * The codec of protocol version 2 (docs/protocol.md). Decoders are exhaustive
 * and throw nothing but `ProtocolError`; encoders throw `UsageError`
 * (`INVALID_ARGUMENT`) for values the protocol cannot carry.
 */

export const PROTOCOL_VERSION = 2
/** Every protocol version this release speaks (a server answers another with `UNSUPPORTED_PROTOCOL_VERSION`). */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [PROTOCOL_VERSION]
export const HEADER_BYTES = 6
export const MAX_REQUEST_ID = 0xffffffff

/** Close codes of the protocol (docs/protocol.md section 6). */
export const CloseCode = {
  /** Normal closure (a client's `Connection.close()`). */
  normal: 1000,
  /** The server is shutting down; the client reconnects. */
  goingAway: 1001,
  /** A text message was received (the protocol is binary). */
  unsupportedData: 1003,
  /** An invalid WebSocket frame, refused by the WebSocket layer. */
  protocolError: 1002,
  /** An invalid WebSocket payload, refused by the WebSocket layer. */
  invalidPayload: 1007,
  /** A frame above `maxFrameBytes`. */
  messageTooBig: 1009,
  /** The frame's protocol version is not one the server speaks; not retried. */
  unsupportedVersion: 4000,
  /** Authentication was refused; not retried. */
  authenticationRefused: 4001,
  /** The client did not authenticate in time. */
  authenticationTimeout: 4002,
  /** The identity or the server holds too many connections. */
  tooManyConnections: 4003,
  /** The client read too slowly (outgoing buffer above `maxBufferedBytes`); it reconnects and catches up. */
  slowConsumer: 4004,
  /** Too many protocol errors on this connection. */
  tooManyProtocolErrors: 4005,
  /** No answer to heartbeats (closed by the client end). */
  heartbeatLost: 4006
} as const

/** Request frame types (client to server); the response to type `t` is `t | RESPONSE_BIT`. */
export const RequestType = {
  /** AUTHENTICATE: sign this connection's challenge (docs/protocol.md). */
  authenticate: 0x01,
  /** UPLOAD_KEY_PACKAGES. */
  uploadKeyPackages: 0x02,
  /** FETCH_KEY_PACKAGES. */
  fetchKeyPackages: 0x03,
  /** LOOKUP_IDENTITY. */
  lookupIdentity: 0x04,
  /** COUNT_KEY_PACKAGES. */
  countKeyPackages: 0x05,
  /** CREATE_GROUP (with the creator's GroupInfo). */
  createGroup: 0x06,
  /** POST_COMMIT. */
  postCommit: 0x07,
  /** POST_MESSAGE. */
  postMessage: 0x08,
  /** FETCH_ENTRIES. */
  fetchEntries: 0x09,
  /** FETCH_WELCOMES. */
  fetchWelcomes: 0x0a,
  /** PING. */
  ping: 0x0b,
  /** FETCH_GROUP_INFO (issue 9). */
  fetchGroupInfo: 0x0c,
  /** POST_PROPOSAL (issue 9). */
  postProposal: 0x0d,
  /** FETCH_DEVICE_LIST (issue 8). */
  fetchDeviceList: 0x20,
  /** PUBLISH_DEVICE_LIST_ENTRY (issue 8). */
  publishDeviceListEntry: 0x21
} as const

export type RequestName = keyof typeof RequestType

export const RESPONSE_BIT = 0x80

/** Frame types the server sends besides responses (docs/protocol.md). */
export const ServerFrameType = {
  /** CHALLENGE: the first frame, the challenge to sign and the server's `maxFrameBytes`. */
  challenge: 0xc0,
  /** ENTRY: a pushed log entry. */
  entry: 0xc1,
  /** WELCOME: a pushed Welcome. */
  welcome: 0xc2,
  /** ERROR: a refused request (or a frame that could not be read, `requestId` 0). */
  error: 0xff
} as const

/** A decoded request, one variant per request type (docs/protocol.md). */
export type Request =
  | {
      /** AUTHENTICATE. */
      readonly type: 'authenticate'
      /** The client to authenticate as. */
      readonly clientId: string
      /** Its signature public key. */
      readonly signaturePublicKey: Uint8Array
      /** Ciphersuite name of the key. */
      readonly ciphersuite: string
      /** `true` to register the identity, `false` to authenticate a registered one. */
      readonly register: boolean
      /** The signature over this connection's challenge. */
      readonly signature: Uint8Array
      /** The URL the client dialled, as signed into its login (`ServerBinding.serverUrl`). */
      readonly serverUrl: string
    }
  | {
      /** UPLOAD_KEY_PACKAGES. */
      readonly type: 'uploadKeyPackages'
      /** One-time KeyPackages. */
      readonly keyPackages: readonly Uint8Array[]
      /** A last-resort KeyPackage replacing the previous one, if any. */
      readonly lastResort?: Uint8Array | undefined
    }
  | {
      /** FETCH_KEY_PACKAGES. */
      readonly type: 'fetchKeyPackages'
      /** Whose devices. */
      readonly userId: string
    }
  | {
      /** LOOKUP_IDENTITY. */
      readonly type: 'lookupIdentity'
      /** The client to look up. */
      readonly clientId: string
    }
  | {
      /** COUNT_KEY_PACKAGES. */
      readonly type: 'countKeyPackages'
    }
  | {
      /** CREATE_GROUP. */
      readonly type: 'createGroup'
      /** The new group's id. */
      readonly groupId: Uint8Array
      /** The creator's signed GroupInfo. */
      readonly groupInfo: Uint8Array
    }
  | {
      /** POST_COMMIT. */
      readonly type: 'postCommit'
      /** The group. */
      readonly groupId: Uint8Array
      /** The epoch the commit is for. */
      readonly epoch: bigint
      /** The commit, an `mls_public_message` MLSMessage. */
      readonly commit: Uint8Array
      /** The Welcome for the members it adds, if any. */
      readonly welcome?: Uint8Array | undefined
      /** The committer's GroupInfo for the new epoch, if any. */
      readonly groupInfo?: Uint8Array | undefined
    }
  | {
      /** POST_MESSAGE. */
      readonly type: 'postMessage'
      /** The group. */
      readonly groupId: Uint8Array
      /** The application message, an `mls_private_message` MLSMessage. */
      readonly message: Uint8Array
    }
  | {
      /** FETCH_ENTRIES. */
      readonly type: 'fetchEntries'
      /** The group. */
      readonly groupId: Uint8Array
      /** Entries after this seq. */
      readonly afterSeq: number
      /** At most this many (`0`: the server's default). */
      readonly limit: number
    }
  | {
      /** FETCH_WELCOMES. */
      readonly type: 'fetchWelcomes'
      /** Welcomes after this seq. */
      readonly afterSeq: number
      /** At most this many (`0`: the server's default). */
      readonly limit: number
    }
  | {
      /** PING. */
      readonly type: 'ping'
    }
  | {
      /** FETCH_DEVICE_LIST. */
      readonly type: 'fetchDeviceList'
      /** Whose list. */
      readonly userId: string
    }
  | {
      /** PUBLISH_DEVICE_LIST_ENTRY. */
      readonly type: 'publishDeviceListEntry'
      /** The encoded, signed entry. */
      readonly entry: Uint8Array
    }
  | {
      /** FETCH_GROUP_INFO. */
      readonly type: 'fetchGroupInfo'
      /** The group. */
      readonly groupId: Uint8Array
    }
  | {
      /** POST_PROPOSAL. */
      readonly type: 'postProposal'
      /** The group. */
      readonly groupId: Uint8Array
      /** The proposal, an `mls_public_message` MLSMessage. */
      readonly proposal: Uint8Array
    }

/** A decoded response, one variant per request type (docs/protocol.md). */
export type Response =
  | {
      /** AUTHENTICATE's response. */
      readonly type: 'authenticate'
      /** The authenticated client. */
      readonly clientId: string
      /** The largest frame the server accepts now that the client is logged in. */
      readonly maxFrameBytes: number
    }
  | {
      /** UPLOAD_KEY_PACKAGES's response. */
      readonly type: 'uploadKeyPackages'
      /** One-time KeyPackages of the caller the Directory now holds. */
      readonly oneTime: number
      /** Whether a last-resort KeyPackage is set. */
      readonly lastResort: boolean
    }
  | {
      /** FETCH_KEY_PACKAGES's response. */
      readonly type: 'fetchKeyPackages'
      /** One KeyPackage per device served. */
      readonly keyPackages: readonly FetchedKeyPackage[]
    }
  | {
      /** LOOKUP_IDENTITY's response. */
      readonly type: 'lookupIdentity'
      /** The registered identity, or `undefined`. */
      readonly identity: RegisteredIdentity | undefined
    }
  | {
      /** COUNT_KEY_PACKAGES's response. */
      readonly type: 'countKeyPackages'
      /** One-time KeyPackages of the caller left. */
      readonly oneTime: number
      /** Whether a last-resort KeyPackage is set. */
      readonly lastResort: boolean
    }
  | {
      /** CREATE_GROUP's response. */
      readonly type: 'createGroup'
    }
  | {
      /** POST_COMMIT's response. */
      readonly type: 'postCommit'
      /** Accepted, or a conflict. */
      readonly result: PostCommitResult
    }
  | {
      /** POST_MESSAGE's response. */
      readonly type: 'postMessage'
      /** The message's log seq. */
      readonly seq: number
    }
  | {
      /** FETCH_ENTRIES's response. */
      readonly type: 'fetchEntries'
      /** The entries, in order. */
      readonly entries: readonly ChannelEntry[]
      /** The server cut the page short to stay within `maxFrameBytes`: ask again after the last seq. */
      readonly more: boolean
    }
  | {
      /** FETCH_WELCOMES's response. */
      readonly type: 'fetchWelcomes'
      /** The Welcomes, in order. */
      readonly welcomes: readonly WelcomeEntry[]
      /** The server cut the page short to stay within `maxFrameBytes`: ask again after the last seq. */
      readonly more: boolean
    }
  | {
      /** PING's response. */
      readonly type: 'ping'
    }
  | {
      /** FETCH_DEVICE_LIST's response. */
      readonly type: 'fetchDeviceList'
      /** The encoded entries, oldest first. */
      readonly entries: readonly Uint8Array[]
    }
  | {
      /** PUBLISH_DEVICE_LIST_ENTRY's response. */
      readonly type: 'publishDeviceListEntry'
      /** The list's new version. */
      readonly version: number
    }
  | {
      /** FETCH_GROUP_INFO's response. */
      readonly type: 'fetchGroupInfo'
      /** The latest GroupInfo, if the channel has one and the caller may read it. */
      readonly groupInfo:
        | {
            /** The epoch it describes. */
            readonly epoch: bigint
            /** The signed GroupInfo, an encoded MLSMessage. */
            readonly groupInfo: Uint8Array
          }
        | undefined
    }
  | {
      /** POST_PROPOSAL's response. */
      readonly type: 'postProposal'
      /** The proposal's log seq. */
      readonly seq: number
    }

/** Every frame a client sends is a request. */
export interface ClientFrame {
  /** The client's id for the request, echoed by its response (1 to `MAX_REQUEST_ID`). */
  readonly requestId: number
  /** The request. */
  readonly request: Request
}

/** A decoded frame from the server. */
export type ServerFrame =
  | {
      /** The response to a request. */
      readonly kind: 'response'
      /** The request it answers. */
      readonly requestId: number
      /** The response. */
      readonly response: Response
    }
  | {
      /** CHALLENGE, the server's first frame. */
      readonly kind: 'challenge'
      /** The random challenge to sign. */
      readonly challenge: Uint8Array
      /** The largest frame the server accepts before login. */
      readonly maxFrameBytes: number
      /** The server's Ed25519 public key (32 bytes). */
      readonly serverKey: Uint8Array
      /** Ed25519 signature of `serverProofContent(challenge)` by `serverKey`. */
      readonly serverSignature: Uint8Array
      /** The server as an external sender of groups, when it has a key. */
      readonly externalSender?: ServerExternalSender
    }
  | {
      /** A pushed log entry. */
      readonly kind: 'entry'
      /** The entry. */
      readonly entry: ChannelEntry
    }
  | {
      /** A pushed Welcome. */
      readonly kind: 'welcome'
      /** The Welcome. */
      readonly entry: WelcomeEntry
    }
  | {
      /** ERROR: a request was refused. */
      readonly kind: 'error'
      /** The refused request; 0 when the frame could not be read. */
      readonly requestId: number
      /** The error code (an `ErrorCode`). */
      readonly code: string
      /** A human-readable explanation. */
      readonly message: string
      /** Machine-readable detail, if any. */
      readonly details: Record<string, unknown> | undefined
    }

/** A frame that breaks the protocol. `requestId` is 0 when the header could not be read. */
export class ProtocolError extends TransportError {
  /** The request the bad frame belongs to; 0 when unknown. */
  readonly requestId: number
  constructor(code: 'TRANSPORT_PROTOCOL' | 'UNSUPPORTED_PROTOCOL_VERSION', message: string, requestId = 0, details?: Record<string, unknown>) {
    super(code, message, details === undefined ? {} : { details })
    this.name = 'ProtocolError'
    this.requestId = requestId
  }
}

const requestNames = new Map<number, RequestName>(Object.entries(RequestType).map(([name, type]) => [type, name as RequestName]))
const MAX_U64 = (1n << 64n) - 1n
const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

class Reader {
  private offset = HEADER_BYTES
  private readonly view: DataView
  private readonly bytes: Uint8Array

  constructor(
    bytes: Uint8Array,
    private readonly requestId: number
  ) {
    // A plain view: Node's Buffer#slice would share memory instead of copying.
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  fail(reason: string): never {
    throw new ProtocolError('TRANSPORT_PROTOCOL', `Malformed frame: ${reason}`, this.requestId)
  }

  private need(n: number, what: string): void {
    if (this.bytes.length - this.offset < n) this.fail(`truncated ${what}`)
  }

  u8(what: string): number {
    this.need(1, what)
    return this.view.getUint8(this.offset++)
  }

  u16(what: string): number {
    this.need(2, what)
    const v = this.view.getUint16(this.offset)
    this.offset += 2
    return v
  }

  u32(what: string): number {
    this.need(4, what)
    const v = this.view.getUint32(this.offset)
    this.offset += 4
    return v
  }

  u64(what: string): bigint {
    this.need(8, what)
    const v = this.view.getBigUint64(this.offset)
    this.offset += 8
    return v
  }

  seq(what: string): number {
    const v = this.u64(what)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} above 2^53-1`)
    return Number(v)
  }

  bool(what: string): boolean {
    const v = this.u8(what)
    if (v > 1) this.fail(`${what} is not a bool`)
    return v === 1
  }

  bytesField(what: string): Uint8Array {
    const n = this.u32(`${what} length`)
    this.need(n, what)
    const v = this.bytes.slice(this.offset, this.offset + n)
    this.offset += n
    return v
  }

  string(what: string): string {
    const n = this.u16(`${what} length`)
    this.need(n, what)
    const start = this.offset
    this.offset += n
    if (n <= 64) {
      let ascii = ''
      let i = start
      for (; i < start + n && (this.bytes[i] as number) < 0x80; i++) ascii += String.fromCharCode(this.bytes[i] as number)
      if (i === start + n) return ascii
    }
    try {
      return textDecoder.decode(this.bytes.subarray(start, start + n))
    } catch {
      return this.fail(`${what} is not UTF-8`)
    }
  }

  optional<T>(what: string, read: () => T): T | undefined {
    return this.bool(`${what} presence`) ? read() : undefined
  }

  list<T>(what: string, minItemBytes: number, read: () => T): T[] {
    const count = this.u32(`${what} count`)
    if (count * minItemBytes > this.bytes.length - this.offset) this.fail(`${what} count ${count} exceeds the frame`)
    const out: T[] = []
    for (let i = 0; i < count; i++) out.push(read())
    return out
  }

  /** Whether every byte was read (an optional trailing field is absent). */
  atEnd(): boolean {
    return this.offset === this.bytes.length
  }

  end(): void {
    if (this.offset !== this.bytes.length) this.fail(`${this.bytes.length - this.offset} trailing bytes`)
  }
}

class Writer {
  private buffer: Uint8Array
  private view: DataView
  private length = 0

  constructor(version: number, type: number, requestId: number, sizeHint = 64) {
    this.buffer = new Uint8Array(Math.max(sizeHint + HEADER_BYTES, 32))
    this.view = new DataView(this.buffer.buffer)
    this.u8(version)
    this.u8(type)
    this.u32(requestId, 'requestId')
  }

  private ensure(n: number): void {
    if (this.length + n <= this.buffer.length) return
    let size = this.buffer.length * 2
    while (size < this.length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buffer.subarray(0, this.length))
    this.buffer = next
    this.view = new DataView(next.buffer)
  }

  u8(v: number): this {
    this.ensure(1)
    this.view.setUint8(this.length, v)
    this.length += 1
    return this
  }

  u32(v: number, what: string): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalid(`${what} must be a uint32, got ${String(v)}`)
    this.ensure(4)
    this.view.setUint32(this.length, v)
    this.length += 4
    return this
  }

  u64(v: bigint, what: string): this {
    if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw invalid(`${what} must be a uint64 bigint, got ${String(v)}`)
    this.ensure(8)
    this.view.setBigUint64(this.length, v)
    this.length += 8
    return this
  }

  seq(v: number, what: string): this {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(`${what} must be a non-negative safe integer, got ${String(v)}`)
    return this.u64(BigInt(v), what)
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0)
  }

  bytes(v: Uint8Array, what: string): this {
    if (!(v instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`)
    this.u32(v.length, `${what} length`)
    this.ensure(v.length)
    this.buffer.set(v, this.length)
    this.length += v.length
    return this
  }

  string(v: string, what: string): this {
    if (typeof v !== 'string') throw invalid(`${what} must be a string`)
    const encoded = textEncoder.encode(v)
    if (encoded.length > 0xffff) throw invalid(`${what} is longer than 65535 UTF-8 bytes`)
    this.ensure(2 + encoded.length)
    this.view.setUint16(this.length, encoded.length)
    this.length += 2
    this.buffer.set(encoded, this.length)
    this.length += encoded.length
    return this
  }

  optional<T>(v: T | undefined, write: (v: T) => void): this {
    this.bool(v !== undefined)
    if (v !== undefined) write(v)
    return this
  }

  list<T>(items: readonly T[], what: string, write: (v: T) => void): this {
    if (!Array.isArray(items)) throw invalid(`${what} must be an array`)
    this.u32(items.length, `${what} count`)
    for (const item of items) write(item)
    return this
  }

  finish(): Uint8Array {
    return this.buffer.subarray(0, this.length)
  }
}

function invalid(message: string): UsageError {
  return new UsageError('INVALID_ARGUMENT', message)
}

function readHeader(bytes: Uint8Array): { type: number; requestId: number } {
  if (!(bytes instanceof Uint8Array)) throw new ProtocolError('TRANSPORT_PROTOCOL', 'A frame must be binary')
  if (bytes.length < HEADER_BYTES) throw new ProtocolError('TRANSPORT_PROTOCOL', `Malformed frame: ${bytes.length} bytes, shorter than the header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const version = view.getUint8(0)
  const type = view.getUint8(1)
  const requestId = view.getUint32(2)
  if (!SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    throw new ProtocolError('UNSUPPORTED_PROTOCOL_VERSION', `Protocol version ${version} is not supported`, requestId, {
      version,
      supported: [...SUPPORTED_PROTOCOL_VERSIONS]
    })
  }
  return { type, requestId }
}

/** The request id of a frame, or 0 when it has no readable header. Never throws. */
export function peekRequestId(bytes: Uint8Array): number {
  return bytes.length >= HEADER_BYTES ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2) : 0
}

// ---- entries shared by both directions

function writeEntry(w: Writer, e: ChannelEntry): void {
  w.bytes(e.groupId, 'groupId')
    .seq(e.seq, 'seq')
    .u8(e.kind === 'commit' ? 1 : e.kind === 'application' ? 2 : e.kind === 'proposal' ? 3 : kindError(e.kind))
    .u64(e.epoch, 'epoch')
    .string(e.sender, 'sender')
    .bytes(e.message, 'message')
}

function kindError(kind: unknown): never {
  throw invalid(`Unknown entry kind ${String(kind)}`)
}

function readEntry(r: Reader): ChannelEntry {
  const groupId = r.bytesField('groupId')
  const seq = r.seq('seq')
  const kindByte = r.u8('kind')
  if (kindByte !== 1 && kindByte !== 2 && kindByte !== 3) r.fail(`entry kind ${kindByte}`)
  const epoch = r.u64('epoch')
  const sender = r.string('sender')
  const message = r.bytesField('message')
  return { groupId, seq, kind: kindByte === 1 ? 'commit' : kindByte === 2 ? 'application' : 'proposal', epoch, sender, message }
}

function writeWelcome(w: Writer, e: WelcomeEntry): void {
  w.seq(e.seq, 'seq').bytes(e.groupId, 'groupId').seq(e.commitSeq, 'commitSeq').bytes(e.welcome, 'welcome')
}

function readWelcome(r: Reader): WelcomeEntry {
  const seq = r.seq('seq')
  const groupId = r.bytesField('groupId')
  const commitSeq = r.seq('commitSeq')
  const welcome = r.bytesField('welcome')
  return { seq, groupId, commitSeq, welcome }
}

function entrySize(e: ChannelEntry): number {
  return e.groupId.length + e.message.length + e.sender.length * 3 + 40
}

// ---- client frames

/** Encode a request frame (client side). Throws `TRANSPORT_PROTOCOL` for a field out of range. */
export function encodeClientFrame(requestId: number, request: Request): Uint8Array {
  const type = RequestType[request.type]
  if (type === undefined) throw invalid(`Unknown request type ${String((request as { type: unknown }).type)}`)
  switch (request.type) {
    case 'authenticate':
      return new Writer(PROTOCOL_VERSION, type, requestId, 256 + request.signaturePublicKey.length + request.signature.length)
        .string(request.clientId, 'clientId')
        .bytes(request.signaturePublicKey, 'signaturePublicKey')
        .string(request.ciphersuite, 'ciphersuite')
        .bool(request.register)
        .bytes(request.signature, 'signature')
        .string(request.serverUrl, 'serverUrl')
        .finish()
    case 'uploadKeyPackages': {
      const size = request.keyPackages.reduce((n, k) => n + 4 + (k?.length ?? 0), 16 + (request.lastResort?.length ?? 0))
      const w = new Writer(PROTOCOL_VERSION, type, requestId, size)
      w.list(request.keyPackages, 'keyPackages', (k) => w.bytes(k, 'keyPackage'))
      w.optional(request.lastResort, (k) => w.bytes(k, 'lastResort'))
      return w.finish()
    }
    case 'fetchKeyPackages':
      return new Writer(PROTOCOL_VERSION, type, requestId).string(request.userId, 'userId').finish()
    case 'lookupIdentity':
      return new Writer(PROTOCOL_VERSION, type, requestId).string(request.clientId, 'clientId').finish()
    case 'countKeyPackages':
    case 'ping':
      return new Writer(PROTOCOL_VERSION, type, requestId, 0).finish()
    case 'createGroup':
      return new Writer(PROTOCOL_VERSION, type, requestId, 16 + request.groupId.length + request.groupInfo.length)
        .bytes(request.groupId, 'groupId')
        .bytes(request.groupInfo, 'groupInfo')
        .finish()
    case 'postCommit': {
      const size = 40 + request.groupId.length + request.commit.length + (request.welcome?.length ?? 0) + (request.groupInfo?.length ?? 0)
      const w = new Writer(PROTOCOL_VERSION, type, requestId, size)
      w.bytes(request.groupId, 'groupId').u64(request.epoch, 'epoch').bytes(request.commit, 'commit')
      w.optional(request.welcome, (v) => w.bytes(v, 'welcome'))
      w.optional(request.groupInfo, (v) => w.bytes(v, 'groupInfo'))
      return w.finish()
    }
    case 'postMessage':
      return new Writer(PROTOCOL_VERSION, type, requestId, 16 + request.groupId.length + request.message.length)
        .bytes(request.groupId, 'groupId')
        .bytes(request.message, 'message')
        .finish()
    case 'fetchEntries':
      return new Writer(PROTOCOL_VERSION, type, requestId)
        .bytes(request.groupId, 'groupId')
        .seq(request.afterSeq, 'afterSeq')
        .u32(request.limit, 'limit')
        .finish()
    case 'fetchWelcomes':
      return new Writer(PROTOCOL_VERSION, type, requestId).seq(request.afterSeq, 'afterSeq').u32(request.limit, 'limit').finish()
    case 'fetchDeviceList':
      return new Writer(PROTOCOL_VERSION, type, requestId).string(request.userId, 'userId').finish()
    case 'publishDeviceListEntry':
      return new Writer(PROTOCOL_VERSION, type, requestId, 8 + request.entry.length).bytes(request.entry, 'entry').finish()
    case 'fetchGroupInfo':
      return new Writer(PROTOCOL_VERSION, type, requestId).bytes(request.groupId, 'groupId').finish()
    case 'postProposal':
      return new Writer(PROTOCOL_VERSION, type, requestId, 16 + request.groupId.length + request.proposal.length)
        .bytes(request.groupId, 'groupId')
        .bytes(request.proposal, 'proposal')
        .finish()
  }
}

/** Decode a request frame (server side), exhaustively; throws `TRANSPORT_PROTOCOL` for a malformed one. */
export function decodeClientFrame(bytes: Uint8Array): ClientFrame {
  const { type, requestId } = readHeader(bytes)
  const name = requestNames.get(type)
  if (name === undefined) {
    throw new ProtocolError('TRANSPORT_PROTOCOL', `Frame type 0x${type.toString(16).padStart(2, '0')} is not a request`, requestId)
  }
  const r = new Reader(bytes, requestId)
  let request: Request
  switch (name) {
    case 'authenticate': {
      const clientId = r.string('clientId')
      const signaturePublicKey = r.bytesField('signaturePublicKey')
      const ciphersuite = r.string('ciphersuite')
      const register = r.bool('register')
      const signature = r.bytesField('signature')
      const serverUrl = r.string('serverUrl')
      request = { type: name, clientId, signaturePublicKey, ciphersuite, register, signature, serverUrl }
      break
    }
    case 'uploadKeyPackages': {
      const keyPackages = r.list('keyPackages', 4, () => r.bytesField('keyPackage'))
      const lastResort = r.optional('lastResort', () => r.bytesField('lastResort'))
      request = { type: name, keyPackages, lastResort }
      break
    }
    case 'fetchKeyPackages':
      request = { type: name, userId: r.string('userId') }
      break
    case 'lookupIdentity':
      request = { type: name, clientId: r.string('clientId') }
      break
    case 'countKeyPackages':
    case 'ping':
      request = { type: name }
      break
    case 'createGroup': {
      const groupId = r.bytesField('groupId')
      request = { type: name, groupId, groupInfo: r.bytesField('groupInfo') }
      break
    }
    case 'postCommit': {
      const groupId = r.bytesField('groupId')
      const epoch = r.u64('epoch')
      const commit = r.bytesField('commit')
      const welcome = r.optional('welcome', () => r.bytesField('welcome'))
      const groupInfo = r.optional('groupInfo', () => r.bytesField('groupInfo'))
      request = { type: name, groupId, epoch, commit, welcome, groupInfo }
      break
    }
    case 'postMessage': {
      const groupId = r.bytesField('groupId')
      request = { type: name, groupId, message: r.bytesField('message') }
      break
    }
    case 'fetchEntries': {
      const groupId = r.bytesField('groupId')
      const afterSeq = r.seq('afterSeq')
      request = { type: name, groupId, afterSeq, limit: r.u32('limit') }
      break
    }
    case 'fetchWelcomes': {
      const afterSeq = r.seq('afterSeq')
      request = { type: name, afterSeq, limit: r.u32('limit') }
      break
    }
    case 'fetchDeviceList':
      request = { type: name, userId: r.string('userId') }
      break
    case 'publishDeviceListEntry':
      request = { type: name, entry: r.bytesField('entry') }
      break
    case 'fetchGroupInfo':
      request = { type: name, groupId: r.bytesField('groupId') }
      break
    case 'postProposal': {
      const groupId = r.bytesField('groupId')
      request = { type: name, groupId, proposal: r.bytesField('proposal') }
      break
    }
  }
  r.end()
  return { requestId, request }
}

// ---- server frames

/** Encode the response to a request (server side). */
export function encodeResponse(requestId: number, response: Response): Uint8Array {
  const type = RequestType[response.type] | RESPONSE_BIT
  switch (response.type) {
    case 'authenticate':
      return new Writer(PROTOCOL_VERSION, type, requestId).string(response.clientId, 'clientId').u32(response.maxFrameBytes, 'maxFrameBytes').finish()
    case 'uploadKeyPackages':
    case 'countKeyPackages':
      return new Writer(PROTOCOL_VERSION, type, requestId).u32(response.oneTime, 'oneTime').bool(response.lastResort).finish()
    case 'fetchKeyPackages': {
      const w = new Writer(PROTOCOL_VERSION, type, requestId, response.keyPackages.reduce((n, k) => n + k.keyPackage.length + 64, 8))
      w.list(response.keyPackages, 'keyPackages', (k) => w.string(k.clientId, 'clientId').bytes(k.keyPackage, 'keyPackage').bool(k.lastResort))
      return w.finish()
    }
    case 'lookupIdentity': {
      const w = new Writer(PROTOCOL_VERSION, type, requestId)
      w.optional(response.identity, (i) => w.string(i.clientId, 'clientId').bytes(i.signaturePublicKey, 'signaturePublicKey').string(i.ciphersuite, 'ciphersuite'))
      return w.finish()
    }
    case 'createGroup':
    case 'ping':
      return new Writer(PROTOCOL_VERSION, type, requestId, 0).finish()
    case 'postCommit': {
      const result = response.result
      const w = new Writer(PROTOCOL_VERSION, type, requestId)
      return w
        .u8(result.kind === 'accepted' ? 0 : 1)
        .u64(result.epoch, 'epoch')
        .seq(result.kind === 'accepted' ? result.seq : 0, 'seq')
        .finish()
    }
    case 'postMessage':
      return new Writer(PROTOCOL_VERSION, type, requestId).seq(response.seq, 'seq').finish()
    case 'fetchEntries': {
      const w = new Writer(PROTOCOL_VERSION, type, requestId, response.entries.reduce((n, e) => n + entrySize(e), 8))
      w.list(response.entries, 'entries', (e) => writeEntry(w, e))
      return w.bool(response.more).finish()
    }
    case 'fetchWelcomes': {
      const w = new Writer(PROTOCOL_VERSION, type, requestId, response.welcomes.reduce((n, e) => n + e.welcome.length + e.groupId.length + 32, 8))
      w.list(response.welcomes, 'welcomes', (e) => writeWelcome(w, e))
      return w.bool(response.more).finish()
    }
    case 'fetchDeviceList': {
      const w = new Writer(PROTOCOL_VERSION, type, requestId, response.entries.reduce((n, e) => n + e.length + 4, 8))
      w.list(response.entries, 'entries', (e) => w.bytes(e, 'entry'))
      return w.finish()
    }
    case 'publishDeviceListEntry':
      return new Writer(PROTOCOL_VERSION, type, requestId).u32(response.version, 'version').finish()
    case 'fetchGroupInfo': {
      const w = new Writer(PROTOCOL_VERSION, type, requestId, 16 + (response.groupInfo?.groupInfo.length ?? 0))
      w.optional(response.groupInfo, (g) => w.u64(g.epoch, 'epoch').bytes(g.groupInfo, 'groupInfo'))
      return w.finish()
    }
    case 'postProposal':
      return new Writer(PROTOCOL_VERSION, type, requestId).seq(response.seq, 'seq').finish()
  }
}

/** Bytes a `fetchEntries` response spends on `entry` (exact). */
export function encodedEntryBytes(entry: ChannelEntry): number {
  return 4 + entry.groupId.length + 8 + 1 + 8 + 2 + textEncoder.encode(entry.sender).length + 4 + entry.message.length
}

/** Bytes a `fetchWelcomes` response spends on `entry` (exact). */
export function encodedWelcomeBytes(entry: WelcomeEntry): number {
  return 8 + 4 + entry.groupId.length + 8 + 4 + entry.welcome.length
}

/**
 * The CHALLENGE frame a server sends first on every connection: the challenge,
 * the frame limit before login, the server's login key and its proof, and the
 * server's external sender (ciphersuite, signature key, credential) appended
 * when it has one (docs/protocol.md).
 */
export function encodeChallenge(
  challenge: Uint8Array,
  maxFrameBytes: number,
  serverKey: Uint8Array,
  serverSignature: Uint8Array,
  externalSender?: ServerExternalSender
): Uint8Array {
  const w = new Writer(
    PROTOCOL_VERSION,
    ServerFrameType.challenge,
    0,
    64 + challenge.length + serverKey.length + serverSignature.length + (externalSender === undefined ? 0 : 128 + externalSender.credential.length)
  )
    .bytes(challenge, 'challenge')
    .u32(maxFrameBytes, 'maxFrameBytes')
    .bytes(serverKey, 'serverKey')
    .bytes(serverSignature, 'serverSignature')
  if (externalSender !== undefined) {
    w.string(externalSender.ciphersuite, 'ciphersuite').bytes(externalSender.signaturePublicKey, 'signaturePublicKey').bytes(externalSender.credential, 'credential')
  }
  return w.finish()
}

/** `url` as a client signs it into its login: scheme, lower-case host, non-default port, path; no query or fragment. */
export function normalizeServerUrl(url: string): string {
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
}

/** What the server signs with its key on each connection: a label, then the challenge. */
export function serverProofContent(challenge: Uint8Array): Uint8Array {
  const label = new TextEncoder().encode('mls-toolkit server challenge v2')
  const content = new Uint8Array(label.length + challenge.length)
  content.set(label)
  content.set(challenge, label.length)
  return content
}

/** A pushed log entry frame. */
export function encodeEntryPush(entry: ChannelEntry): Uint8Array {
  const w = new Writer(PROTOCOL_VERSION, ServerFrameType.entry, 0, entrySize(entry))
  writeEntry(w, entry)
  return w.finish()
}

/** A pushed Welcome frame. */
export function encodeWelcomePush(entry: WelcomeEntry): Uint8Array {
  const w = new Writer(PROTOCOL_VERSION, ServerFrameType.welcome, 0, entry.welcome.length + entry.groupId.length + 32)
  writeWelcome(w, entry)
  return w.finish()
}

function jsonDetails(details: Record<string, unknown> | undefined): string {
  if (details === undefined) return ''
  try {
    return JSON.stringify(details, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value instanceof Uint8Array ? undefined : value))
  } catch {
    return ''
  }
}

/** An ERROR frame; `message` is cut to fit a string field. */
export function encodeError(requestId: number, code: string, message: string, details?: Record<string, unknown>): Uint8Array {
  let text = message
  while (textEncoder.encode(text).length > 0xffff) text = text.slice(0, Math.floor(text.length / 2))
  let detailText = jsonDetails(details)
  if (textEncoder.encode(detailText).length > 0xffff) detailText = ''
  return new Writer(PROTOCOL_VERSION, ServerFrameType.error, requestId, 64 + text.length)
    .string(code, 'code')
    .string(text, 'message')
    .string(detailText, 'details')
    .finish()
}

function parseDetails(text: string): Record<string, unknown> | undefined {
  if (text === '') return undefined
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Decode a frame from the server (client side), exhaustively; throws `TRANSPORT_PROTOCOL` for a malformed one. */
export function decodeServerFrame(bytes: Uint8Array): ServerFrame {
  const { type, requestId } = readHeader(bytes)
  const r = new Reader(bytes, requestId)
  let frame: ServerFrame
  if (type === ServerFrameType.challenge) {
    const challenge = r.bytesField('challenge')
    const maxFrameBytes = r.u32('maxFrameBytes')
    const serverKey = r.bytesField('serverKey')
    const serverSignature = r.bytesField('serverSignature')
    frame = r.atEnd()
      ? { kind: 'challenge', challenge, maxFrameBytes, serverKey, serverSignature }
      : {
          kind: 'challenge',
          challenge,
          maxFrameBytes,
          serverKey,
          serverSignature,
          externalSender: { ciphersuite: r.string('ciphersuite'), signaturePublicKey: r.bytesField('signaturePublicKey'), credential: r.bytesField('credential') }
        }
  } else if (type === ServerFrameType.entry) {
    frame = { kind: 'entry', entry: readEntry(r) }
  } else if (type === ServerFrameType.welcome) {
    frame = { kind: 'welcome', entry: readWelcome(r) }
  } else if (type === ServerFrameType.error) {
    const code = r.string('code')
    const message = r.string('message')
    frame = { kind: 'error', requestId, code, message, details: parseDetails(r.string('details')) }
  } else {
    const name = (type & RESPONSE_BIT) !== 0 ? requestNames.get(type & ~RESPONSE_BIT) : undefined
    if (name === undefined) throw new ProtocolError('TRANSPORT_PROTOCOL', `Unknown frame type 0x${type.toString(16).padStart(2, '0')}`, requestId)
    frame = { kind: 'response', requestId, response: readResponse(r, name) }
  }
  r.end()
  return frame
}

function readResponse(r: Reader, name: RequestName): Response {
  switch (name) {
    case 'authenticate':
      return { type: name, clientId: r.string('clientId'), maxFrameBytes: r.u32('maxFrameBytes') }
    case 'uploadKeyPackages':
    case 'countKeyPackages': {
      const oneTime = r.u32('oneTime')
      return { type: name, oneTime, lastResort: r.bool('lastResort') }
    }
    case 'fetchKeyPackages':
      return {
        type: name,
        keyPackages: r.list('keyPackages', 7, () => {
          const clientId = r.string('clientId')
          const keyPackage = r.bytesField('keyPackage')
          return { clientId, keyPackage, lastResort: r.bool('lastResort') }
        })
      }
    case 'lookupIdentity':
      return {
        type: name,
        identity: r.optional('identity', () => {
          const clientId = r.string('clientId')
          const signaturePublicKey = r.bytesField('signaturePublicKey')
          return { clientId, signaturePublicKey, ciphersuite: r.string('ciphersuite') }
        })
      }
    case 'createGroup':
    case 'ping':
      return { type: name }
    case 'postCommit': {
      const outcome = r.u8('outcome')
      if (outcome > 1) r.fail(`commit outcome ${outcome}`)
      const epoch = r.u64('epoch')
      const seq = r.seq('seq')
      return { type: name, result: outcome === 0 ? { kind: 'accepted', seq, epoch } : { kind: 'conflict', epoch } }
    }
    case 'postMessage':
      return { type: name, seq: r.seq('seq') }
    case 'fetchEntries': {
      const entries = r.list('entries', 27, () => readEntry(r))
      return { type: name, entries, more: r.bool('more') }
    }
    case 'fetchWelcomes': {
      const welcomes = r.list('welcomes', 24, () => readWelcome(r))
      return { type: name, welcomes, more: r.bool('more') }
    }
    case 'fetchDeviceList':
      return { type: name, entries: r.list('entries', 4, () => r.bytesField('entry')) }
    case 'publishDeviceListEntry':
      return { type: name, version: r.u32('version') }
    case 'fetchGroupInfo':
      return {
        type: name,
        groupInfo: r.optional('groupInfo', () => {
          const epoch = r.u64('epoch')
          return { epoch, groupInfo: r.bytesField('groupInfo') }
        })
      }
    case 'postProposal':
      return { type: name, seq: r.seq('seq') }
  }
}
