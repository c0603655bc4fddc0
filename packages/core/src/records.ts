import { StorageError } from './errors.js'
import { utf8 } from './bytes.js'

/** Node's Buffer where there is one (native base64, several times faster on the large records: a pending commit's Welcome); the portable path elsewhere. */
const NodeBuffer = (globalThis as { Buffer?: { from(data: ArrayBufferLike | string, offsetOrEncoding?: number | string, length?: number): Uint8Array & { toString(encoding: string): string } } }).Buffer

function toBase64(bytes: Uint8Array): string {
  if (NodeBuffer !== undefined) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  let s = ''
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}

function fromBase64(b64: string): Uint8Array {
  if (NodeBuffer !== undefined) return Uint8Array.from(NodeBuffer.from(b64, 'base64'))
  const s = atob(b64)
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** JSON with Uint8Array and bigint support, for core's own store records. */
export function encodeRecord(value: unknown): Uint8Array {
  return utf8.encode(
    JSON.stringify(value, (_key, v: unknown) => {
      if (v instanceof Uint8Array) return { $b: toBase64(v) }
      if (typeof v === 'bigint') return { $n: v.toString() }
      return v
    })
  )
}

export function decodeRecord<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(utf8.decode(bytes), (_key, v: unknown) => {
      if (typeof v === 'object' && v !== null) {
        const o = v as Record<string, unknown>
        if (typeof o.$b === 'string' && Object.keys(o).length === 1) return fromBase64(o.$b)
        if (typeof o.$n === 'string' && Object.keys(o).length === 1) return BigInt(o.$n)
      }
      return v
    }) as T
  } catch (cause) {
    throw new StorageError('STORAGE_CORRUPT', `Stored ${what} could not be decoded`, { cause })
  }
}

export const storeKeys = {
  identity: 'identity',
  keyPackagePrefix: 'keypackage/',
  keyPackage: (refHex: string) => `keypackage/${refHex}`,
  welcomeCursor: 'welcomes/cursor',
  groupActivity: 'groups/activity',
  invitationPrefix: 'invitations/',
  invitation: (seq: number) => `invitations/${String(seq).padStart(12, '0')}`,
  /** The server's external sender as first advertised (pinned, docs/trust-model.md). */
  serverSender: 'server/external-sender',
  /** The server's login key (protocol v2) as first presented (pinned, docs/trust-model.md). */
  serverLoginKey: 'server/login-key',
  groupPrefix: 'group/',
  groupMeta: (gid: string) => `group/${gid}/meta`,
  groupState: (gid: string) => `group/${gid}/state`,
  groupPending: (gid: string) => `group/${gid}/pending`,
  /** The private key of this member's own pending Update proposal (proposals.ts `OwnUpdateKey`). */
  groupUpdateKey: (gid: string) => `group/${gid}/update-key`,
  groupInboxPrefix: (gid: string) => `group/${gid}/inbox/`,
  groupSentPrefix: (gid: string) => `group/${gid}/sent/`,
  groupSent: (gid: string, digest: string) => `group/${gid}/sent/${digest}`,
  groupInbox: (gid: string, id: string) => `group/${gid}/inbox/${id}`
} as const
