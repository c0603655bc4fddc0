#!/usr/bin/env node
// Make sure Debian's PostgreSQL server binaries are installed, for the
// PostgreSQL store's tests (packages/storage-postgres) and the multi-instance
// server tests (apps/server). The tests start a throwaway cluster of their own
// (initdb under a temp dir, a free loopback port, stopped after the tests):
// see packages/storage-postgres/test/cluster.ts. Nothing here touches a
// cluster the machine already runs.
//
// Prints the directory holding `initdb`, `pg_ctl` and `postgres` on stdout and
// exits 0 when found. Otherwise runs, as root:
//   apt-get update
//   apt-get install -y --no-install-recommends postgresql
// and fails loudly (exit 1, with the reason) when not root or apt fails.
// `--check` only reports, installing nothing (exit 0 present, 2 missing).
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const log = (line) => process.stderr.write(`[ensure-postgres] ${line}\n`)

function fail(message) {
  log(`ERROR: ${message}`)
  log('The PostgreSQL tests need Debian\'s postgresql package: run `apt-get update && apt-get install -y --no-install-recommends postgresql` as root.')
  process.exit(1)
}

/** The newest /usr/lib/postgresql/<major>/bin with initdb, pg_ctl and postgres (or $PG_BIN_DIR). */
function findBinDir() {
  const candidates = []
  if (process.env.PG_BIN_DIR) candidates.push(process.env.PG_BIN_DIR)
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const majors = readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a))
    candidates.push(...majors.map((m) => join(root, m, 'bin')))
  }
  return candidates.find((dir) => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(dir, b))))
}

let dir = findBinDir()
if (dir !== undefined) {
  log(`${dir} present`)
  process.stdout.write(`${dir}\n`)
  process.exit(0)
}
if (process.argv.includes('--check')) {
  log('PostgreSQL server binaries missing')
  process.exit(2)
}
if (process.platform !== 'linux') fail(`PostgreSQL is missing and automatic installation only works on Debian/Ubuntu Linux (this is ${process.platform}).`)
if (typeof process.getuid === 'function' && process.getuid() !== 0) fail(`PostgreSQL is missing and installing it needs root (uid is ${process.getuid()}).`)

const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
// Wait for the dpkg lock rather than fail when another apt run holds it.
const lockWait = ['-o', 'DPkg::Lock::Timeout=300']
// Several test files may run this at once on a fresh machine: when apt fails
// (another apt-get holds a lock), wait and look again before retrying.
let lastError
for (let attempt = 1; attempt <= 5 && findBinDir() === undefined; attempt++) {
  try {
    for (const args of [['update', ...lockWait], ['install', '-y', '--no-install-recommends', ...lockWait, 'postgresql']]) {
      log(`running: apt-get ${args.join(' ')}`)
      execFileSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 15 * 60_000 })
    }
  } catch (error) {
    lastError = error
    log(`apt-get failed (attempt ${attempt} of 5): ${error instanceof Error ? error.message : String(error)}`)
    execFileSync('sleep', [String(5 * attempt)])
  }
}
if (findBinDir() === undefined && lastError !== undefined) fail(`apt-get failed: ${lastError instanceof Error ? lastError.message : String(lastError)}`)
dir = findBinDir()
if (dir === undefined) fail('apt-get installed postgresql but no /usr/lib/postgresql/<major>/bin holds initdb, pg_ctl and postgres.')
log(`installed ${dir}`)
process.stdout.write(`${dir}\n`)
