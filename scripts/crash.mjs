#!/usr/bin/env node
// `pnpm crash --kills N` (default 100): SIGKILL the server store's process at
// random points of a busy stream of acceptances (commits with Welcomes,
// messages, KeyPackage consumption), half of the kills on SQLite, half on
// PostgreSQL (where every second kill also kills the database server itself),
// and check after each kill that every acknowledged call is there exactly
// once, with no gap, no partial commit and no KeyPackage served twice.
// Runs the crash tests of @mls/storage-sqlite and @mls/storage-postgres with
// MLS_CRASH_KILLS set; `pnpm test` runs them with a few kills each.
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
const runs = [
  ['SQLite', 'packages/storage-sqlite/test/crash.test.ts', Math.floor(kills / 2)],
  ['PostgreSQL', 'packages/storage-postgres/test/crash.test.ts', kills - Math.floor(kills / 2)]
]
let failed = false
for (const [name, file, n] of runs) {
  process.stdout.write(`[crash] ${name}: ${n} kills\n`)
  const result = spawnSync('npx', ['vitest', 'run', file], { cwd: root, stdio: 'inherit', env: { ...process.env, MLS_CRASH_KILLS: String(n) } })
  if (result.status !== 0) failed = true
  process.stdout.write(`[crash] ${name}: ${result.status === 0 ? `${n} kills survived` : 'FAILED'}\n`)
}
process.exit(failed ? 1 : 0)
