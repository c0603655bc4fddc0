// What the client crash child writes, shared with the test that checks it.

/** A recognisable 200-byte value for `kind` at write `n`. */
export function valueOf(kind, n) {
  const out = Buffer.alloc(200)
  out.write(`${kind}-${n}|`.repeat(200), 'latin1')
  return new Uint8Array(out)
}

/** The log key of write `n`, ordered as numbers. */
export function logKey(n) {
  return `log/${String(n).padStart(8, '0')}`
}
