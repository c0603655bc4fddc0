// One of several processes racing on one PostgreSQL server store.
// Usage: node race-child.js <connection string> <schema> <name> consume <clientId>
//        node race-child.js <connection string> <schema> <name> commit <groupId> <lastEpoch>
// Prints `ready`, waits for a line on stdin, then one line per resolved call, then `done`.
import { writeSync } from 'node:fs'
import process from 'node:process'
import { createInterface } from 'node:readline'
import { openPostgresServerStore } from '../dist/index.js'

const [url, schema, name, mode, target, last] = process.argv.slice(2)
const store = await openPostgresServerStore({ connectionString: url, schema, maxConnections: 4 })
const out = (line) => writeSync(1, `${line}\n`)
const lines = createInterface({ input: process.stdin })
const go = new Promise((resolve) => lines.once('line', resolve))
out('ready')
await go
lines.close()

if (mode === 'consume') {
  // Four concurrent consumers in this process, against the other process's four.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (;;) {
        const record = await store.consumeKeyPackage(target, 1_700_000_000)
        if (record === undefined) return
        out(`consumed ${record.ref}`)
      }
    })
  )
} else {
  const lastEpoch = BigInt(last)
  let epoch = 0n
  let n = 0
  while (epoch <= lastEpoch) {
    const label = `${name}-${n++}`
    const message = new TextEncoder().encode(label)
    const result = await store.appendCommit(target, {
      expectedEpoch: epoch,
      entry: { kind: 'commit', epoch, sender: name, message, digest: `commit-${label}` },
      roster: [{ leafIndex: 0, clientId: name }],
      access: [{ clientId: name, fromSeq: 0, untilSeq: null }],
      welcomes: [{ clientId: 'welcomed', welcome: message }]
    })
    if (result.kind === 'accepted') {
      out(`accepted ${epoch} ${result.seq} commit-${label} ${result.welcomeSeqs[0].seq}`)
      epoch++
    } else {
      out(`conflict ${epoch} ${result.epoch}`)
      epoch = result.epoch
    }
    const appended = await store.appendMessage(target, { kind: 'application', epoch, sender: name, message, digest: `message-${label}` })
    if (appended.kind === 'accepted') out(`message ${appended.seq} message-${label}`)
  }
}
await store.close()
out('done')
