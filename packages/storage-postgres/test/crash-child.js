// A stream of acceptances against the PostgreSQL server store, one
// acknowledgement line per resolved call, until the parent kills this process
// or the database (SIGKILL). The same plan as @mls/storage-sqlite's crash test.
// Usage: node crash-child.js <connection string> <round>
import { writeSync } from 'node:fs'
import process from 'node:process'
import { openPostgresServerStore } from '../dist/index.js'
import { G, NOW, acceptor, commitFor, messageFor } from '../../storage-sqlite/test/crash-plan.js'

const [url, round] = process.argv.slice(2)
const store = await openPostgresServerStore({ connectionString: url, schema: 'crash', maxConnections: 2 })
const ack = (line) => writeSync(1, `${line}\n`)

const group = await store.getGroup(G)
let epoch = group.epoch
ack('ready')
for (let i = 0; ; i++) {
  const step = i % 3
  if (step === 0) {
    const result = await store.appendCommit(G, commitFor(epoch))
    if (result.kind !== 'accepted') throw new Error(`Unexpected conflict at epoch ${epoch}`)
    ack(`commit ${epoch} ${result.seq} ${result.welcomeSeqs.map((w) => `${w.clientId}=${w.seq}`).join(',')}`)
    epoch++
  } else if (step === 1) {
    const entry = messageFor(`r${round}-${i}`, epoch)
    const result = await store.appendMessage(G, entry)
    if (result.kind !== 'accepted') throw new Error(`Unexpected duplicate ${entry.digest}`)
    ack(`message ${entry.digest} ${result.seq}`)
  } else {
    const record = await store.consumeKeyPackage(acceptor, NOW)
    ack(`consume ${record?.ref ?? '-'}`)
  }
}
