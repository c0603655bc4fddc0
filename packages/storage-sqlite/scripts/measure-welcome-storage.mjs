// Bytes the SQLite server store holds for one commit that adds 500 members to a
// 1,000-member group (issue 11): a real Welcome from core's engine (ratchet tree
// in the GroupInfo, 500 encrypted group secrets), appended through the store's
// own appendCommit with one mailbox row per added member. Counts the pages in
// use after the store closed (its WAL checkpointed). Run after a build:
//   node scripts/measure-welcome-storage.mjs [--size 1000] [--added 500] [--store <module>]
// `--store` loads another build of this package (e.g. the release before schema
// v5) to compare. The Welcome is cached in the OS temp folder, so both runs store
// the same bytes. Prints the Welcome's size and the database growth.
import console from 'node:console'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'
import Database from 'better-sqlite3'

const argument = (name, fallback) => {
  const index = process.argv.indexOf(name)
  return index < 0 ? fallback : process.argv[index + 1]
}
const size = Number(argument('--size', '1000'))
const added = Number(argument('--added', '500'))
const storeModule = argument('--store', new URL('../dist/index.js', import.meta.url).href)
const { sqliteServerStore } = await import(storeModule.startsWith('file:') ? storeModule : pathToFileURL(resolve(storeModule)).href)

/** A real Welcome: a group of `size` members (one commit adds everyone), then one commit adding `added` more. */
async function makeWelcome() {
  const cache = join(tmpdir(), `mls-welcome-${size}-${added}.bin`)
  if (existsSync(cache)) return new Uint8Array(readFileSync(cache))
  const mls = await import('@mls/core/mls')
  const { tsMlsDefaultCrypto } = await import('@mls/core')
  const cs = await tsMlsDefaultCrypto().getCiphersuiteImpl(mls.getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
  const encoder = new TextEncoder()
  const member = (i) => mls.generateKeyPackage({ credentialType: 'basic', identity: encoder.encode(`user${i}/phone`) }, mls.defaultCapabilities(), mls.defaultLifetime, [], cs)
  const members = []
  for (let i = 0; i < size + added; i++) members.push(await member(i))
  const add = (m) => ({ proposalType: 'add', add: { keyPackage: m.publicPackage } })
  const created = await mls.createGroup(encoder.encode('welcome-storage'), members[0].publicPackage, members[0].privatePackage, [], cs)
  const full = await mls.createCommit({ state: created, cipherSuite: cs }, { extraProposals: members.slice(1, size).map(add) })
  const result = await mls.createCommit({ state: full.newState, cipherSuite: cs }, { extraProposals: members.slice(size).map(add), ratchetTreeExtension: true })
  const welcome = mls.encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome })
  writeFileSync(cache, welcome)
  return welcome
}

/** Pages in use (page count less free pages) times the page size, read by a separate connection after the store closed. */
function bytesInUse(path) {
  const db = new Database(path, { readonly: true })
  try {
    const pageSize = db.pragma('page_size', { simple: true })
    return (db.pragma('page_count', { simple: true }) - db.pragma('freelist_count', { simple: true })) * pageSize
  } finally {
    db.close()
  }
}
const bytesOnDisk = (path) => [path, `${path}-wal`].reduce((n, file) => n + (existsSync(file) ? statSync(file).size : 0), 0)

const started = performance.now()
const welcome = await makeWelcome()
console.log(`Welcome adding ${added} to a ${size}-member group: ${welcome.length} bytes (${((performance.now() - started) / 1000).toFixed(1)} s to make or load)`)
const dir = mkdtempSync(join(tmpdir(), 'mls-welcome-storage-'))
try {
  const path = join(dir, 'server.db')
  let store = sqliteServerStore({ path })
  const roster = Array.from({ length: size }, (_, i) => ({ leafIndex: i, clientId: `user${i}/phone` }))
  const access = roster.map((r) => ({ clientId: r.clientId, fromSeq: 0, untilSeq: null }))
  await store.createGroup({ groupId: 'aa01', epoch: 0n, lastSeq: 0, roster, access })
  await store.close()
  const before = bytesInUse(path)
  const fileBefore = bytesOnDisk(path)
  store = sqliteServerStore({ path })
  const recipients = Array.from({ length: added }, (_, i) => `user${size + i}/phone`)
  const t = performance.now()
  const result = await store.appendCommit('aa01', {
    expectedEpoch: 0n,
    entry: { kind: 'commit', epoch: 0n, sender: 'user0/phone', message: new Uint8Array(2048), digest: 'commit-1' },
    roster: [...roster, ...recipients.map((clientId, i) => ({ leafIndex: size + i, clientId }))],
    access: [...access, ...recipients.map((clientId) => ({ clientId, fromSeq: -1, untilSeq: null }))],
    welcomes: recipients.map((clientId) => ({ clientId, welcome }))
  })
  const appendMs = performance.now() - t
  if (result.kind !== 'accepted') throw new Error(`appendCommit: ${result.kind}`)
  const read = await store.readWelcomes(recipients.at(-1), 0, 10)
  if (read.length !== 1 || read[0].welcome.length !== welcome.length) throw new Error('the last recipient does not read its Welcome')
  await store.close() // checkpoints the WAL into the main file
  const after = bytesInUse(path)
  const fileAfter = bytesOnDisk(path)
  const mib = (n) => (n / 2 ** 20).toFixed(2)
  console.log(`${storeModule}: ${added} recipients; pages in use grew by ${after - before} bytes (${mib(after - before)} MiB), files (db + WAL) by ${fileAfter - fileBefore} bytes (${mib(fileAfter - fileBefore)} MiB); appendCommit took ${appendMs.toFixed(0)} ms`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
