import type { CiphersuiteImpl } from 'ts-mls'
import { signWithLabel, verifyWithLabel } from 'ts-mls/crypto/signature.js'
import type { ClientId } from './interfaces/common.js'
import { MessageError, UsageError } from './errors.js'
import { concatBytes, equalBytes, utf8 } from './bytes.js'
import { basicCredentials, type CredentialValidator } from './identity.js'

/**
 * Signed device lists (docs/trust-model.md). A user's devices form a
 * hash-chained list of entries: the first device claims the user id, every
 * further device is added by a listed device (with the new device's own
 * signature over its link request), and a listed device may remove another.
 * The Directory stores and serves the encoded entries; it checks each one
 * before appending, and clients verify the whole chain before they trust a
 * device of the user.
 */

/** SignWithLabel label of device-list entries ("MLS 1.0 " is prefixed by SignWithLabel). */
export const DEVICE_LIST_LABEL = 'mls-toolkit device-list v1'
/** SignWithLabel label of a new device's link request. */
export const DEVICE_LINK_LABEL = 'mls-toolkit device-link v1'
/** Most entries one user's list may hold; the Directory refuses more (`DEVICE_LIST_INVALID`). */
export const MAX_DEVICE_LIST_ENTRIES = 256
/** Largest app proof carried by a claim, in bytes. */
export const MAX_CLAIM_PROOF_BYTES = 8192

const ENTRY_FORMAT = 1
const LINK_FORMAT = 2
const HASH_BYTES = 32

/** A device as its user's list names it. */
export interface ListedDevice {
  /** The device's client id, `user/device`. */
  readonly clientId: ClientId
  /** The device's signature key. */
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
}

/** What an entry does: claim the user id (first entry only), add a device, or remove one. */
export type DeviceListAction = 'claim' | 'add' | 'remove'

/** One entry of a user's device list, decoded. */
export interface DeviceListEntry {
  /** The user whose list this is. */
  readonly userId: string
  /** Position in the chain, from 1. */
  readonly version: number
  /** SHA-256 of the previous encoded entry; empty for version 1. */
  readonly previous: Uint8Array
  /** What the entry does. */
  readonly action: DeviceListAction
  /** The device claimed, added or removed. */
  readonly device: ListedDevice
  /** The listed device that signed the entry (for a claim, the device itself). */
  readonly signer: ClientId
  /** For `add`: the new device's signature over its link request; empty otherwise. */
  readonly deviceSignature: Uint8Array
  /** For `claim`: the app's proof for the server's authentication hook (opaque); empty otherwise. */
  readonly proof: Uint8Array
  /** Milliseconds since the epoch, as the signer's clock said (informational). */
  readonly createdAt: number
  /** The signer's SignWithLabel signature (label `DEVICE_LIST_LABEL`) over the entry without this field. */
  readonly signature: Uint8Array
}

/** A new device's request to be linked: produced on the new device, carried to an existing one (a QR code, say). */
export interface DeviceLinkRequest {
  /** The user the device joins. */
  readonly userId: string
  /** The new device. */
  readonly device: ListedDevice
  /** The new device's SignWithLabel signature (label `DEVICE_LINK_LABEL`) over the request. */
  readonly signature: Uint8Array
}

/** A device list whose every entry verified. */
export interface VerifiedDeviceList {
  /** The user whose list this is. */
  readonly userId: string
  /** Number of entries; 0 for a user with no list. */
  readonly version: number
  /** SHA-256 of the last encoded entry (empty for version 0). */
  readonly head: Uint8Array
  /** The devices listed now, sorted by client id. */
  readonly devices: readonly ListedDevice[]
  /** Every device the list ever held, removed ones included, sorted by client id. */
  readonly history: readonly ListedDevice[]
  /** The decoded entries, oldest first. */
  readonly entries: readonly DeviceListEntry[]
  /** SHA-256 of each encoded entry, in order. */
  readonly hashes: readonly Uint8Array[]
}

/** Finds the implementation of a ciphersuite by name; `undefined` when it is not supported. */
export type SuiteResolver = (ciphersuite: string) => Promise<CiphersuiteImpl | undefined>

// ---- encoding (big-endian, u16-length strings, u32-length byte strings)

class Writer {
  private readonly parts: Uint8Array[] = []

  u8(v: number): this {
    this.parts.push(Uint8Array.of(v))
    return this
  }

  u32(v: number): this {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, v)
    this.parts.push(b)
    return this
  }

  u64(v: number): this {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setBigUint64(0, BigInt(v))
    this.parts.push(b)
    return this
  }

  bytes(v: Uint8Array): this {
    this.u32(v.length)
    this.parts.push(v)
    return this
  }

  string(v: string): this {
    const encoded = utf8.encode(v)
    if (encoded.length > 0xffff) throw new UsageError('INVALID_ARGUMENT', 'String longer than 65535 bytes')
    const b = new Uint8Array(2)
    new DataView(b.buffer).setUint16(0, encoded.length)
    this.parts.push(b, encoded)
    return this
  }

  finish(): Uint8Array {
    return concatBytes(...this.parts)
  }
}

class Reader {
  private offset = 0
  private readonly view: DataView

  constructor(
    private readonly data: Uint8Array,
    private readonly what: string
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  }

  private need(n: number): void {
    if (this.data.length - this.offset < n) throw invalid(`${this.what} is truncated`)
  }

  u8(): number {
    this.need(1)
    return this.view.getUint8(this.offset++)
  }

  u32(): number {
    this.need(4)
    const v = this.view.getUint32(this.offset)
    this.offset += 4
    return v
  }

  u64(): number {
    this.need(8)
    const v = this.view.getBigUint64(this.offset)
    this.offset += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${this.what} has a time above 2^53`)
    return Number(v)
  }

  bytes(): Uint8Array {
    const n = this.u32()
    this.need(n)
    const v = this.data.slice(this.offset, this.offset + n)
    this.offset += n
    return v
  }

  string(): string {
    this.need(2)
    const n = this.view.getUint16(this.offset)
    this.offset += 2
    this.need(n)
    const bytes = this.data.subarray(this.offset, this.offset + n)
    this.offset += n
    try {
      return utf8.decode(bytes)
    } catch {
      throw invalid(`${this.what} holds a string that is not UTF-8`)
    }
  }

  end(): void {
    if (this.offset !== this.data.length) throw invalid(`${this.what} has ${this.data.length - this.offset} trailing bytes`)
  }
}

function invalid(reason: string, details: Record<string, unknown> = {}): MessageError {
  return new MessageError('DEVICE_LIST_INVALID', reason, { details: { reason, ...details } })
}

const actions: readonly DeviceListAction[] = ['claim', 'add', 'remove']

function writeDevice(w: Writer, d: ListedDevice): void {
  w.string(d.clientId).bytes(d.signaturePublicKey).string(d.ciphersuite)
}

function readDevice(r: Reader): ListedDevice {
  const clientId = r.string()
  const signaturePublicKey = r.bytes()
  return { clientId, signaturePublicKey, ciphersuite: r.string() }
}

function entryContent(e: Omit<DeviceListEntry, 'signature'>): Uint8Array {
  const w = new Writer().u8(ENTRY_FORMAT).string(e.userId).u32(e.version).bytes(e.previous).u8(actions.indexOf(e.action))
  writeDevice(w, e.device)
  return w.string(e.signer).bytes(e.deviceSignature).bytes(e.proof).u64(e.createdAt).finish()
}

/** The wire form of an entry (what the Directory stores and serves). */
export function encodeDeviceListEntry(entry: DeviceListEntry): Uint8Array {
  return concatBytes(entryContent(entry), new Writer().bytes(entry.signature).finish())
}

/** Decode an entry; throws `DEVICE_LIST_INVALID` for malformed bytes. */
export function decodeDeviceListEntry(bytes: Uint8Array): DeviceListEntry {
  if (!(bytes instanceof Uint8Array)) throw invalid('A device-list entry must be bytes')
  const r = new Reader(bytes, 'device-list entry')
  if (r.u8() !== ENTRY_FORMAT) throw invalid('Unknown device-list entry format')
  const userId = r.string()
  const version = r.u32()
  const previous = r.bytes()
  const action = actions[r.u8()]
  if (action === undefined) throw invalid('Unknown device-list action')
  const device = readDevice(r)
  const signer = r.string()
  const deviceSignature = r.bytes()
  const proof = r.bytes()
  const createdAt = r.u64()
  const signature = r.bytes()
  r.end()
  return { userId, version, previous, action, device, signer, deviceSignature, proof, createdAt, signature }
}

function linkContent(userId: string, device: ListedDevice): Uint8Array {
  const w = new Writer().u8(LINK_FORMAT).string(userId)
  writeDevice(w, device)
  return w.finish()
}

/** The wire form of a link request (bytes to carry from the new device to an existing one). */
export function encodeDeviceLinkRequest(request: DeviceLinkRequest): Uint8Array {
  return concatBytes(linkContent(request.userId, request.device), new Writer().bytes(request.signature).finish())
}

/** Decode a link request; throws `DEVICE_LIST_INVALID` for malformed bytes. */
export function decodeDeviceLinkRequest(bytes: Uint8Array): DeviceLinkRequest {
  if (!(bytes instanceof Uint8Array)) throw invalid('A link request must be bytes')
  const r = new Reader(bytes, 'link request')
  if (r.u8() !== LINK_FORMAT) throw invalid('Not a device link request')
  const userId = r.string()
  const device = readDevice(r)
  const signature = r.bytes()
  r.end()
  return { userId, device, signature }
}

const SHA256_SUITES = [
  'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
  'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519',
  'MLS_128_DHKEMP256_AES128GCM_SHA256_P256'
]

/**
 * SHA-256, the hash of device lists whatever the devices' suites: from the
 * first SHA-256 suite `suites` supports, else WebCrypto (absent in a browser
 * page that is not a secure context).
 */
export async function sha256Hasher(suites: SuiteResolver): Promise<(data: Uint8Array) => Promise<Uint8Array>> {
  for (const name of SHA256_SUITES) {
    const impl = await suites(name)
    if (impl !== undefined) return (data) => impl.hash.digest(data)
  }
  const subtle = globalThis.crypto?.subtle
  if (subtle !== undefined) return async (data) => new Uint8Array(await subtle.digest('SHA-256', data.slice()))
  throw new UsageError('UNSUPPORTED_CIPHERSUITE', 'Device lists need SHA-256: no SHA-256 ciphersuite is supported and WebCrypto is not available')
}

async function verifySignature(label: string, content: Uint8Array, signature: Uint8Array, device: ListedDevice, suites: SuiteResolver): Promise<boolean> {
  const impl = await suites(device.ciphersuite)
  if (impl === undefined) throw invalid(`Ciphersuite ${device.ciphersuite} of ${device.clientId} is not supported here, so its signature cannot be checked`)
  try {
    return await verifyWithLabel(device.signaturePublicKey, label, content, signature, impl.signature)
  } catch {
    return false
  }
}

const byClientId = (a: ListedDevice, b: ListedDevice): number => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0)

/**
 * Check a user's whole list, entry by entry, and return the devices it lists.
 *
 * Rules (each failure throws `DEVICE_LIST_INVALID` with `details.index` and
 * `details.reason`): every entry names `userId`, has version `index + 1` and
 * `previous` equal to the SHA-256 of the entry before (empty for the first);
 * the first entry, and only it, is a `claim` of a device of the user signed by
 * that device; an `add` names a device of the user never listed before, is
 * signed by a device listed at that point, and carries the new device's own
 * signature over its link request; a `remove` names a listed device with its
 * listed key, is signed by a listed device, and leaves at least one device.
 * Device client ids follow `validator` (default `basicCredentials`).
 *
 * `signatures: false` skips the signature checks: only for entries this
 * process verified before (the Directory replaying what it stored).
 */
export async function verifyDeviceList(
  encoded: readonly Uint8Array[],
  context: { userId: string; suites: SuiteResolver; validator?: CredentialValidator; signatures?: boolean }
): Promise<VerifiedDeviceList> {
  const { userId, suites } = context
  const validator = context.validator ?? basicCredentials
  const checkSignatures = context.signatures !== false
  const sha256 = await sha256Hasher(suites)
  if (encoded.length > MAX_DEVICE_LIST_ENTRIES) throw invalid(`A device list holds at most ${MAX_DEVICE_LIST_ENTRIES} entries`)
  const current = new Map<ClientId, ListedDevice>()
  const history = new Map<ClientId, ListedDevice>()
  const entries: DeviceListEntry[] = []
  const hashes: Uint8Array[] = []
  let head: Uint8Array = new Uint8Array(0)
  for (const [index, bytes] of encoded.entries()) {
    const fail = (reason: string): never => {
      throw invalid(`Entry ${index + 1} of ${userId}'s device list: ${reason}`, { index })
    }
    let entry: DeviceListEntry
    try {
      entry = decodeDeviceListEntry(bytes)
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error))
    }
    if (entry.userId !== userId) fail(`names user ${JSON.stringify(entry.userId)}`)
    if (entry.version !== index + 1) fail(`has version ${entry.version}`)
    if (!equalBytes(entry.previous, head)) fail('does not chain to the entry before it')
    let owner: string
    try {
      owner = validator.parseClientId(entry.device.clientId).userId
    } catch {
      return fail(`names the malformed client id ${JSON.stringify(entry.device.clientId)}`)
    }
    if (owner !== userId) fail(`names ${entry.device.clientId}, a device of another user`)
    if (entry.action === 'claim') {
      if (index !== 0) fail('claims a user id that is already claimed')
      if (entry.signer !== entry.device.clientId) fail('is a claim not signed by the claiming device')
    } else if (index === 0) {
      fail('must be a claim')
    }
    if (entry.action !== 'add' && entry.deviceSignature.length > 0) fail('carries a device signature outside an add')
    if (entry.action !== 'claim' && entry.proof.length > 0) fail('carries a proof outside a claim')
    if (entry.proof.length > MAX_CLAIM_PROOF_BYTES) fail(`carries a proof larger than ${MAX_CLAIM_PROOF_BYTES} bytes`)
    const signer = entry.action === 'claim' ? entry.device : current.get(entry.signer)
    if (signer === undefined) fail(`is signed by ${entry.signer}, which is not a listed device`)
    const { signature, ...content } = entry
    if (checkSignatures && !(await verifySignature(DEVICE_LIST_LABEL, entryContent(content), signature, signer!, suites))) {
      fail(`signature of ${entry.signer} does not verify`)
    }
    const id = entry.device.clientId
    if (entry.action === 'add') {
      if (history.has(id)) fail(`adds ${id}, which was listed before`)
      if (checkSignatures && !(await verifySignature(DEVICE_LINK_LABEL, linkContent(userId, entry.device), entry.deviceSignature, entry.device, suites))) {
        fail(`the link signature of ${id} does not verify`)
      }
    }
    if (entry.action === 'remove') {
      const listed = current.get(id)
      if (listed === undefined || !equalBytes(listed.signaturePublicKey, entry.device.signaturePublicKey) || listed.ciphersuite !== entry.device.ciphersuite) {
        fail(`removes ${id}, which is not listed with that key`)
      }
      if (current.size === 1) fail('removes the last device')
      current.delete(id)
    } else {
      const device: ListedDevice = { clientId: id, signaturePublicKey: entry.device.signaturePublicKey, ciphersuite: entry.device.ciphersuite }
      current.set(id, device)
      history.set(id, device)
    }
    head = await sha256(bytes)
    entries.push(entry)
    hashes.push(head)
  }
  return {
    userId,
    version: entries.length,
    head,
    devices: [...current.values()].sort(byClientId),
    history: [...history.values()].sort(byClientId),
    entries,
    hashes
  }
}

/** The listed device that signs new entries, with its private key. */
export interface DeviceSigner {
  /** The signing device, as listed. */
  readonly device: ListedDevice
  /** Its private signature key. */
  readonly signaturePrivateKey: Uint8Array
  /** The ciphersuite implementation to sign with. */
  readonly cs: CiphersuiteImpl
}

async function signEntry(content: Omit<DeviceListEntry, 'signature'>, signer: DeviceSigner): Promise<Uint8Array> {
  const signature = await signWithLabel(signer.signaturePrivateKey, DEVICE_LIST_LABEL, entryContent(content), signer.cs.signature)
  return encodeDeviceListEntry({ ...content, signature })
}

/** The first entry of `userId`'s list: `signer` claims the user id, with the app's `proof` (may be empty). */
export async function createClaimEntry(userId: string, signer: DeviceSigner, options: { proof?: Uint8Array; now?: number } = {}): Promise<Uint8Array> {
  return signEntry(
    {
      userId,
      version: 1,
      previous: new Uint8Array(0),
      action: 'claim',
      device: signer.device,
      signer: signer.device.clientId,
      deviceSignature: new Uint8Array(0),
      proof: options.proof ?? new Uint8Array(0),
      createdAt: options.now ?? Date.now()
    },
    signer
  )
}

/** Made on the new device: its request to be linked to `userId`, signed with its own key. */
export async function createDeviceLinkRequest(userId: string, signer: DeviceSigner): Promise<Uint8Array> {
  const signature = await signWithLabel(signer.signaturePrivateKey, DEVICE_LINK_LABEL, linkContent(userId, signer.device), signer.cs.signature)
  return encodeDeviceLinkRequest({ userId, device: signer.device, signature })
}

/**
 * Made on a listed device: the entry that adds the device of `request` to
 * `list`. Throws `DEVICE_LIST_INVALID` for a request of another user, one
 * whose signature does not verify, or a device listed before.
 */
export async function createAddEntry(
  list: VerifiedDeviceList,
  request: Uint8Array | DeviceLinkRequest,
  signer: DeviceSigner,
  suites: SuiteResolver,
  options: { now?: number } = {}
): Promise<Uint8Array> {
  const link = request instanceof Uint8Array ? decodeDeviceLinkRequest(request) : request
  if (link.userId !== list.userId) throw invalid(`The link request is for user ${JSON.stringify(link.userId)}, not ${JSON.stringify(list.userId)}`)
  if (list.history.some((d) => d.clientId === link.device.clientId)) throw invalid(`${link.device.clientId} was listed before; a device id is used once`)
  if (!(await verifySignature(DEVICE_LINK_LABEL, linkContent(link.userId, link.device), link.signature, link.device, suites))) {
    throw invalid(`The link request signature of ${link.device.clientId} does not verify`)
  }
  return signEntry(
    {
      userId: list.userId,
      version: list.version + 1,
      previous: list.head,
      action: 'add',
      device: link.device,
      signer: signer.device.clientId,
      deviceSignature: link.signature,
      proof: new Uint8Array(0),
      createdAt: options.now ?? Date.now()
    },
    signer
  )
}

/** Made on a listed device: the entry that removes `clientId` from `list`. */
export async function createRemoveEntry(list: VerifiedDeviceList, clientId: ClientId, signer: DeviceSigner, options: { now?: number } = {}): Promise<Uint8Array> {
  const device = list.devices.find((d) => d.clientId === clientId)
  if (device === undefined) throw new UsageError('INVALID_ARGUMENT', `${clientId} is not a listed device of ${list.userId}`)
  if (list.devices.length === 1) throw new UsageError('INVALID_ARGUMENT', `${clientId} is the last device of ${list.userId}`)
  return signEntry(
    {
      userId: list.userId,
      version: list.version + 1,
      previous: list.head,
      action: 'remove',
      device,
      signer: signer.device.clientId,
      deviceSignature: new Uint8Array(0),
      proof: new Uint8Array(0),
      createdAt: options.now ?? Date.now()
    },
    signer
  )
}

const FINGERPRINT_ITERATIONS = 1024

/**
 * The safety number of a user: 30 digits in six groups of five, over the
 * user id and every listed device (client id, ciphersuite, signature key).
 * Two people compare it out of band (read aloud, a QR code); equal numbers
 * mean both see the same devices with the same keys. It changes whenever a
 * device is added or removed or a key changes.
 */
export async function deviceListFingerprint(list: Pick<VerifiedDeviceList, 'userId' | 'devices'>, suites: SuiteResolver): Promise<string> {
  const sha256 = await sha256Hasher(suites)
  const w = new Writer().u8(3).string(list.userId).u32(list.devices.length)
  for (const d of [...list.devices].sort(byClientId)) writeDevice(w, d)
  const input = w.finish()
  let digest = await sha256(input)
  for (let i = 1; i < FINGERPRINT_ITERATIONS; i++) digest = await sha256(concatBytes(digest, input))
  const groups: string[] = []
  for (let g = 0; g < 6; g++) {
    let n = 0
    for (let i = 0; i < 5; i++) n = n * 256 + digest[g * 5 + i]!
    groups.push(String(n % 100_000).padStart(5, '0'))
  }
  return groups.join(' ')
}

/** True when `list` was built on `earlier`: same entries up to `earlier.version` (an extension, not a replacement). */
export function extendsDeviceList(list: Pick<VerifiedDeviceList, 'version' | 'hashes'>, earlier: { version: number; head: Uint8Array }): boolean {
  if (earlier.version === 0) return true
  if (list.version < earlier.version) return false
  return equalBytes(list.hashes[earlier.version - 1]!, earlier.head)
}

/** Length in bytes of a device-list entry hash (the `previous` and `head` fields). */
export const DEVICE_LIST_HASH_BYTES = HASH_BYTES
