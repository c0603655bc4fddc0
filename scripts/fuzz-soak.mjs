#!/usr/bin/env node
// `pnpm fuzz [--frames N] [--connections C] [--minutes M]` and `pnpm soak [--minutes M] [--clients K] [--rate R] [--sqlite-cache-mib N]`:
// the long runs of the fuzz and soak tests that `pnpm test` runs briefly (docs/protocol.md, docs/server.md).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [mode, ...args] = process.argv.slice(2)
const options = {}
for (let i = 0; i < args.length; i += 2) {
  const name = args[i]
  const value = args[i + 1]
  if (!name?.startsWith('--') || value === undefined || !Number.isFinite(Number(value)) || Number(value) <= 0) {
    console.error(`usage: pnpm fuzz [--frames N] [--connections C] [--minutes M] | pnpm soak [--minutes M] [--clients K] [--rate R] [--sqlite-cache-mib N]; got ${name} ${value}`)
    process.exit(2)
  }
  options[name.slice(2)] = Number(value)
}
const runs = {
  fuzz: {
    file: 'packages/transport-ws/test/fuzz.test.ts',
    env: {
      MLS_FUZZ_FRAMES: String(options.frames ?? 1_000_000),
      MLS_FUZZ_CONNECTIONS: String(options.connections ?? 24),
      // --minutes M: stop sending after M minutes (a busy machine) and report the frames sent by then.
      ...(options.minutes === undefined ? {} : { MLS_FUZZ_DEADLINE: String(Date.now() + options.minutes * 60_000) })
    }
  },
  soak: {
    file: 'apps/server/test/soak.test.ts',
    env: {
      MLS_SOAK_SECONDS: String(Math.round((options.minutes ?? 10) * 60)),
      MLS_SOAK_CLIENTS: String(options.clients ?? 300),
      MLS_SOAK_RATE: String(options.rate ?? 50),
      // --sqlite-cache-mib N: the server's SQLite page cache (default 16,000 KiB); memory grows by up to this much with the database.
      ...(options['sqlite-cache-mib'] === undefined ? {} : { MLS_SOAK_SQLITE_CACHE_MIB: String(options['sqlite-cache-mib']) }),
      // The soak test writes its summary here (server heapUsed after GC and RSS: start, peak, end, slope over the last half).
      MLS_SOAK_REPORT: join(mkdtempSync(join(tmpdir(), 'mls-soak-report-')), 'report.txt')
    }
  }
}
const run = runs[mode]
if (run === undefined) {
  console.error('usage: node scripts/fuzz-soak.mjs fuzz|soak [options]')
  process.exit(2)
}
const result = spawnSync('pnpm', ['exec', 'vitest', 'run', run.file, '--testTimeout=0', '--hookTimeout=0'], {
  stdio: 'inherit',
  env: { ...process.env, ...run.env }
})
const report = run.env.MLS_SOAK_REPORT
if (report !== undefined) {
  if (existsSync(report)) process.stdout.write(`\n${readFileSync(report, 'utf8')}`)
  rmSync(join(report, '..'), { recursive: true, force: true })
}
process.exit(result.status ?? 1)
