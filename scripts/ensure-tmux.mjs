#!/usr/bin/env node
// Make sure tmux is installed, for the terminal tests of apps/cli (two chat
// processes in real terminals, typed into with send-keys, read with
// capture-pane).
//
// Exits 0 at once when `tmux -V` runs. Otherwise runs, as root:
//   apt-get update
//   apt-get install -y --no-install-recommends tmux
// and fails loudly (exit 1, with the reason) when not root or apt fails.
// `--check` only reports, installing nothing (exit 0 present, 2 missing).
import { execFileSync } from 'node:child_process'

const log = (line) => process.stderr.write(`[ensure-tmux] ${line}\n`)
const present = () => {
  try {
    return execFileSync('tmux', ['-V'], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}
function fail(message) {
  log(`ERROR: ${message}`)
  log('The terminal tests need tmux: run `apt-get update && apt-get install -y --no-install-recommends tmux` as root.')
  process.exit(1)
}

const version = present()
if (version !== undefined) {
  log(`${version} present`)
  process.exit(0)
}
if (process.argv.includes('--check')) {
  log('tmux missing')
  process.exit(2)
}
if (process.platform !== 'linux') fail(`tmux is missing and automatic installation only works on Debian/Ubuntu Linux (this is ${process.platform}).`)
if (typeof process.getuid === 'function' && process.getuid() !== 0) fail(`tmux is missing and installing it needs root (uid is ${process.getuid()}).`)
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
const lockWait = ['-o', 'DPkg::Lock::Timeout=300']
for (const args of [['update', ...lockWait], ['install', '-y', '--no-install-recommends', ...lockWait, 'tmux']]) {
  log(`running: apt-get ${args.join(' ')}`)
  try {
    execFileSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 15 * 60_000 })
  } catch (error) {
    fail(`apt-get ${args.join(' ')} failed: ${error instanceof Error ? error.message : String(error)}`)
  }
}
if (present() === undefined) fail('apt-get installed tmux but `tmux -V` still fails.')
log('installed tmux')
