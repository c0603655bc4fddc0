#!/usr/bin/env node
// `pnpm crash --kills N` (default 100), in two parts:
// - stores (a quarter of the kills each on SQLite and PostgreSQL): SIGKILL the
//   server store's process at random points of a busy stream of acceptances
//   (commits with Welcomes, messages, KeyPackage consumption; on PostgreSQL
//   every second kill also kills the database server), and check after each
//   kill that every acknowledged call is there exactly once, with no gap, no
//   partial commit and no KeyPackage served twice;
// - processes (the other half, split between SQLite and PostgreSQL): SIGKILL
//   a member's process (SQLite client store) and the real apps/server
//   processes (one on SQLite; two instances on PostgreSQL) during a busy
//   conversation, then check every acknowledged message reached the member
//   once and both members agree on the epoch authenticator.
// Runs those tests with MLS_CRASH_KILLS set; `pnpm test` runs them with a few kills.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const args = process.argv.slice(2)
const at = args.findIndex((a) => a === '--kills' || a.startsWith('--kills='))
const raw = at === -1 ? '100' : args[at].includes('=') ? args[at].split('=')[1] : args[at + 1]
const kills = Number(raw)
if (!Number.isSafeInteger(kills) || kills < 2) {
  process.stderr.write(`--kills must be an integer >= 2, got ${JSON.stringify(raw)}\n`)
  process.exit(2)
}
const root = fileURLToPath(new URL('..', import.meta.url))
const quarter = Math.max(1, Math.floor(kills / 4))
const perProcessVariant = Math.max(1, Math.ceil((kills - 2 * quarter) / 2))
const runs = [
  ['SQLite store', 'packages/storage-sqlite/test/crash.test.ts', quarter, quarter],
  ['PostgreSQL store', 'packages/storage-postgres/test/crash.test.ts', quarter, quarter],
  ['client and server processes (SQLite and PostgreSQL)', 'apps/server/test/crash-processes.test.ts', perProcessVariant, 2 * perProcessVariant]
]
let failed = false
let survived = 0
for (const [name, file, perRun, total] of runs) {
  process.stdout.write(`[crash] ${name}: ${total} kills\n`)
  const result = spawnSync('npx', ['vitest', 'run', file], { cwd: root, stdio: 'inherit', env: { ...process.env, MLS_CRASH_KILLS: String(perRun) } })
  if (result.status !== 0) failed = true
  else survived += total
  process.stdout.write(`[crash] ${name}: ${result.status === 0 ? `${total} kills survived` : 'FAILED'}\n`)
}
process.stdout.write(`[crash] ${survived} kills survived in all${failed ? ', some runs FAILED' : ''}\n`)
process.exit(failed ? 1 : 0)
