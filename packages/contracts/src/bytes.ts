/** Small byte helpers shared by core, the adapters and the services. */
const hexTable = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** Lower-case hex encoding of `bytes` (two characters per byte). */
export function toHex(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += hexTable[b]
  return out
}

/** The bytes of a hex string (either case). Throws `TypeError` for an odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) throw new TypeError('Invalid hex string')
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

/** Whether `a` and `b` hold the same bytes; for equal lengths it takes the same time wherever they differ. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number)
  return diff === 0
}

/**
 * Group equal byte strings: `distinct` holds each different value once (its
 * first occurrence) and `indexOf[i]` is the position in `distinct` of
 * `values[i]`. The server stores use it to keep one copy of a Welcome that a
 * commit sends to many recipients. The same object is recognised without
 * reading its bytes.
 */
export function distinctBytes(values: readonly Uint8Array[]): {
  /** Each different value once, in order of first occurrence. */
  distinct: Uint8Array[]
  /** For each input value, its position in `distinct`. */
  indexOf: number[]
} {
  const distinct: Uint8Array[] = []
  const indexOf = values.map((value) => {
    let index = distinct.indexOf(value)
    if (index < 0) index = distinct.findIndex((d) => equalBytes(d, value))
    if (index < 0) index = distinct.push(value) - 1
    return index
  })
  return { distinct, indexOf }
}

/** A new array holding `parts` one after the other. */
export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** UTF-8 conversion between strings and bytes. */
export const utf8 = {
  /** The UTF-8 bytes of `s`. */
  encode: (s: string): Uint8Array => new TextEncoder().encode(s),
  /** The string of UTF-8 bytes `b`; throws `TypeError` on invalid UTF-8. */
  decode: (b: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(b)
}
