// One "server instance" of the throughput benchmark: opens the PostgreSQL
// store, waits for a line on stdin, then appends OPS messages with CALLERS
// concurrent callers (each on its own group), and prints the seconds taken.
// Usage: node append-child.mjs <connection string> <instance name> <ops> <callers>
import { writeSync } from 'node:fs'
import process from 'node:process'
import { createInterface } from 'node:readline'
import { openPostgresServerStore } from '../dist/index.js'

const [url, name, ops, callers] = process.argv.slice(2)
const store = await openPostgresServerStore({ connectionString: url, schema: 'bench', maxConnections: Number(callers) })
const groups = Array.from({ length: Number(callers) }, (_, i) => `${name}${i}`)
for (const groupId of groups) await store.createGroup({ groupId, epoch: 0n, lastSeq: 0, roster: [], access: [] })
const message = new Uint8Array(1024).fill(7)
const lines = createInterface({ input: process.stdin })
writeSync(1, 'ready\n')
await new Promise((resolve) => lines.once('line', resolve))
lines.close()
const perCaller = Math.ceil(Number(ops) / groups.length)
const start = process.hrtime.bigint()
await Promise.all(
  groups.map(async (groupId) => {
    for (let i = 0; i < perCaller; i++) await store.appendMessage(groupId, { kind: 'application', epoch: 0n, sender: 'b/p', message, digest: `${groupId}-${i}` })
  })
)
const seconds = Number(process.hrtime.bigint() - start) / 1e9
await store.close()
writeSync(1, `${seconds} ${perCaller * groups.length}\n`)
