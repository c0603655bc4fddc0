// Where the time of a client store write goes, on the disk under os.tmpdir()
// (or --dir). Not a test: the numbers go to docs/storage.md.
//
//   node packages/storage-sqlite/scripts/measure-deletion.mjs [--rounds 200] [--dir /path]
//
// Raw better-sqlite3 with the store's pragmas (WAL, secure_delete), one table
// like the client store's, and batches shaped like one message's writes (a
// new 1 KiB record and two overwritten ~300-byte records):
// - a commit of inserts only, and a commit that overwrites, at synchronous FULL and NORMAL;
// - the TRUNCATE checkpoint that follows an overwrite, alone, and its parts
//   (PASSIVE checkpoint, then TRUNCATE of an already checkpointed WAL);
// - one fsync of a small file, and one ftruncate+fsync;
// - the published store's `write` (inserts, overwrites) and `flush()`, with
//   secureDeletion 'immediate' (the checkpoint before `write` resolves) and
//   'background' (in a worker thread after it resolves).
import Database from 'better-sqlite3'
import { closeSync, fsyncSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { sqliteClientStore } from '../dist/index.js'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '200' }, dir: { type: 'string' } } })
const rounds = Number(values.rounds)
const dir = mkdtempSync(join(values.dir ?? tmpdir(), 'mls-measure-deletion-'))

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]
}
const rows = []
function report(name, samples) {
  rows.push(`| ${name} | ${percentile(samples, 0.5).toFixed(3)} | ${percentile(samples, 0.9).toFixed(3)} | ${percentile(samples, 0.99).toFixed(3)} |`)
}
function time(fn) {
  const t = performance.now()
  fn()
  return performance.now() - t
}

function open(path, synchronous) {
  const db = new Database(path)
  db.pragma('secure_delete = ON')
  db.pragma('temp_store = MEMORY')
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${synchronous}`)
  db.exec('CREATE TABLE IF NOT EXISTS entries (key BLOB NOT NULL UNIQUE, value BLOB NOT NULL) STRICT')
  const insert = db.prepare('INSERT INTO entries (key, value) VALUES (?, ?)')
  const update = db.prepare('UPDATE entries SET value = ? WHERE key = ?')
  return { db, insert, update }
}

let counter = 0
function rawDatabase(synchronous) {
  const { db, insert, update } = open(join(dir, `raw-${synchronous}-${counter++}.db`), synchronous)
  // A group's worth of records already there (the ratchet, meta, ...).
  db.transaction(() => {
    for (let i = 0; i < 200; i++) insert.run(Buffer.from(`group/x/record/${i}`), randomBytes(300))
  })()
  db.pragma('wal_checkpoint(TRUNCATE)')
  const insertOnly = []
  const overwrite = []
  const overwriteThenTruncate = []
  const truncateAlone = []
  const passive = []
  const truncateAfterPassive = []
  for (let i = 0; i < rounds; i++) {
    insertOnly.push(time(() => db.transaction(() => insert.run(Buffer.from(`message/${i}`), randomBytes(1024)))()))
    let n = 0
    const batch = () =>
      db.transaction(() => {
        insert.run(Buffer.from(`window/${i}/${n++}`), randomBytes(1024))
        update.run(randomBytes(300), Buffer.from(`group/x/record/${i % 200}`))
        update.run(randomBytes(300), Buffer.from(`group/x/record/${(i + 1) % 200}`))
      })()
    overwrite.push(time(batch))
    truncateAlone.push(time(() => db.pragma('wal_checkpoint(TRUNCATE)')))
    overwriteThenTruncate.push(
      time(() => {
        batch()
        db.pragma('wal_checkpoint(TRUNCATE)')
      })
    )
    batch()
    passive.push(time(() => db.pragma('wal_checkpoint(PASSIVE)')))
    truncateAfterPassive.push(time(() => db.pragma('wal_checkpoint(TRUNCATE)')))
  }
  db.close()
  report(`commit, 1 KiB insert only (${synchronous})`, insertOnly)
  report(`commit, insert + 2 overwrites (${synchronous})`, overwrite)
  report(`TRUNCATE checkpoint after that commit (${synchronous})`, truncateAlone)
  report(`commit + TRUNCATE checkpoint, as the store did (${synchronous})`, overwriteThenTruncate)
  report(`PASSIVE checkpoint of one commit (${synchronous})`, passive)
  report(`then TRUNCATE of the checkpointed WAL (${synchronous})`, truncateAfterPassive)
}

function fileSyscalls() {
  const path = join(dir, 'plain-file')
  const fd = openSync(path, 'w')
  const fsyncs = []
  const truncates = []
  for (let i = 0; i < rounds; i++) {
    writeSync(fd, randomBytes(4096), 0, 4096, 0)
    fsyncs.push(time(() => fsyncSync(fd)))
    writeSync(fd, randomBytes(4096), 0, 4096, 0)
    truncates.push(
      time(() => {
        ftruncateSync(fd, 0)
        fsyncSync(fd)
      })
    )
  }
  closeSync(fd)
  report('fsync of a 4 KiB file just written', fsyncs)
  report('ftruncate to 0 + fsync', truncates)
}

async function publishedStore(synchronous, secureDeletion) {
  const store = sqliteClientStore({ path: join(dir, `store-${synchronous}-${secureDeletion}.db`), synchronous, secureDeletion })
  const setup = []
  for (let i = 0; i < 200; i++) setup.push({ type: 'put', key: `group/x/record/${i}`, value: randomBytes(300) })
  await store.write(setup)
  const inserts = []
  const overwrites = []
  for (let i = 0; i < rounds; i++) {
    let t = performance.now()
    await store.write([{ type: 'put', key: `message/${i}`, value: randomBytes(1024) }])
    inserts.push(performance.now() - t)
    t = performance.now()
    await store.write([
      { type: 'put', key: `window/${i}`, value: randomBytes(1024) },
      { type: 'put', key: `group/x/record/${i % 200}`, value: randomBytes(300) },
      { type: 'put', key: `group/x/record/${(i + 1) % 200}`, value: randomBytes(300) }
    ])
    overwrites.push(performance.now() - t)
  }
  const flushes = []
  if (typeof store.flush === 'function') {
    for (let i = 0; i < Math.min(rounds, 50); i++) {
      await store.write([{ type: 'put', key: `group/x/record/${i}`, value: randomBytes(300) }])
      const t = performance.now()
      await store.flush()
      flushes.push(performance.now() - t)
    }
  }
  await store.close()
  const mode = `${synchronous}, ${secureDeletion}`
  report(`store.write, 1 KiB insert (${mode})`, inserts)
  report(`store.write, insert + 2 overwrites (${mode})`, overwrites)
  if (flushes.length > 0) report(`store.flush() right after one overwrite (${mode})`, flushes)
}

try {
  fileSyscalls()
  for (const synchronous of ['FULL', 'NORMAL']) rawDatabase(synchronous)
  for (const synchronous of ['full', 'normal']) {
    for (const secureDeletion of ['immediate', 'background']) await publishedStore(synchronous, secureDeletion)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
console.log(`${rounds} rounds in ${dir}, SQLite ${new Database(':memory:').prepare('select sqlite_version() v').get().v}, Node ${process.version}, ms`)
console.log('| step | median | p90 | p99 |')
console.log('| --- | ---: | ---: | ---: |')
for (const row of rows) console.log(row)
