// A stream of atomic multi-key writes against a client store, each one
// overwriting and deleting earlier values (so the background checkpoint runs
// all the time), one acknowledgement line per resolved write, until the
// parent kills this process (SIGKILL). Writes are `strict`, `relaxed`, or
// `mixed` (every third strict): a kill must lose none of either kind.
// Usage: node client-crash-child.js <database path> <full|normal> <background|immediate> [strict|relaxed|mixed]
import { writeSync } from 'node:fs'
import process from 'node:process'
import { sqliteClientStore } from '../dist/index.js'
import { logKey, valueOf } from './client-crash-plan.js'

const [path, synchronous, secureDeletion, durability = 'strict'] = process.argv.slice(2)
const store = sqliteClientStore({ path, synchronous, secureDeletion })
const ack = (line) => writeSync(1, `${line}\n`)

const stored = await store.get('counter')
let n = stored === undefined ? 0 : Number(Buffer.from(stored).toString('utf8'))
ack('ready')
for (;;) {
  n++
  await store.write([
    { type: 'put', key: 'counter', value: new Uint8Array(Buffer.from(String(n))) },
    { type: 'put', key: 'pair/a', value: valueOf('pair', n) },
    { type: 'put', key: 'pair/b', value: valueOf('pair', n) },
    { type: 'put', key: logKey(n), value: valueOf('log', n) },
    ...(n > 3 ? [{ type: 'delete', key: logKey(n - 3) }] : [])
  ], { durability: durability === 'mixed' ? (n % 3 === 0 ? 'strict' : 'relaxed') : durability })
  ack(`write ${n}`)
  // A pause now and then lets the background checkpoint start (it waits for deleting writes to pause), so kills land during checkpoints too.
  if (n % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 12))
}
