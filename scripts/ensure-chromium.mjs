#!/usr/bin/env node
// Make sure Debian's Chromium is installed at /usr/bin/chromium, for the
// browser tests (packages/browser-tests). Playwright's own browser download
// cannot work on these machines (no network but the package registries), so
// the tests drive the distribution's Chromium through playwright-core.
//
// Exits 0 at once when /usr/bin/chromium exists. Otherwise runs, as root:
//   apt-get update
//   apt-get install -y --no-install-recommends chromium
// and fails loudly (exit 1, with the reason) when not root or apt fails.
// `--check` only reports, installing nothing (exit 0 present, 2 missing).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const log = (line) => process.stderr.write(`[ensure-chromium] ${line}\n`)

function fail(message) {
  log(`ERROR: ${message}`)
  log('The browser tests need Debian\'s chromium package: run `apt-get update && apt-get install -y --no-install-recommends chromium` as root.')
  process.exit(1)
}

if (existsSync(CHROMIUM)) {
  log(`${CHROMIUM} present`)
  process.exit(0)
}
if (process.argv.includes('--check')) {
  log(`${CHROMIUM} missing`)
  process.exit(2)
}
if (process.platform !== 'linux') fail(`${CHROMIUM} is missing and automatic installation only works on Debian/Ubuntu Linux (this is ${process.platform}).`)
if (typeof process.getuid === 'function' && process.getuid() !== 0) fail(`${CHROMIUM} is missing and installing it needs root (uid is ${process.getuid()}).`)

const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
// Wait for the dpkg lock rather than fail when another apt run holds it.
const lockWait = ['-o', 'DPkg::Lock::Timeout=300']
for (const args of [['update', ...lockWait], ['install', '-y', '--no-install-recommends', ...lockWait, 'chromium']]) {
  log(`running: apt-get ${args.join(' ')}`)
  try {
    execFileSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 15 * 60_000 })
  } catch (error) {
    fail(`apt-get ${args.join(' ')} failed: ${error instanceof Error ? error.message : String(error)}`)
  }
}
if (!existsSync(CHROMIUM)) fail(`apt-get installed chromium but ${CHROMIUM} is still missing.`)
log(`installed ${CHROMIUM}`)
