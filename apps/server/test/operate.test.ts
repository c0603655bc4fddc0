// Operating the real server process: signals through `pnpm start`, startup
// failures with one clear line and a documented exit code, the data dir lock,
// and a --help that lists every flag and variable.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { OPTIONS, parseConfig } from '../src/config.js'
import { ExitCode } from '../src/startup.js'
import { startServerProcess } from './harness.js'

const APP = join(dirname(fileURLToPath(import.meta.url)), '..')
const REPOSITORY = join(APP, '..', '..')
const MAIN = join(APP, 'dist', 'main.js')

const dirs: string[] = []
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'mls-operate-'))
  dirs.push(d)
  return d
}

/** Run the built server with `args` until it exits by itself. */
function runServer(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** A startup failure: exactly one line on stderr (no stack trace) and a `server:start-failed` JSON log line. */
function expectStartupFailure(result: { code: number | null; stdout: string; stderr: string }, exitCode: number, reason: string, line: RegExp): void {
  expect(result.code).toBe(exitCode)
  const errorLines = result.stderr.trim().split('\n')
  expect(errorLines).toHaveLength(1)
  expect(errorLines[0]).toMatch(/^mls-server: cannot start: /)
  expect(errorLines[0]).toMatch(line)
  const logs = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  expect(logs.find((l) => l.event === 'server:start-failed')).toMatchObject({ level: 'error', reason, exitCode })
  expect(logs.some((l) => l.event === 'server:started')).toBe(false)
}

function occupyPort(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }))
  })
}

describe('startup failures', () => {
  it('a port already in use: exit 3, one line naming the port', async () => {
    const { server, port } = await occupyPort()
    cleanups.push(() => new Promise((r) => server.close(() => r())))
    const result = await runServer(['--port', String(port), '--data-dir', tempDir()])
    expectStartupFailure(result, ExitCode.PORT_UNAVAILABLE, 'port-unavailable', new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`))
  })

  it('a port out of range: exit 2, one line', async () => {
    const result = await runServer(['--port', '70000', '--data-dir', tempDir()])
    expectStartupFailure(result, ExitCode.USAGE, 'usage', /--port must be between 0 and 65535, got 70000/)
  })

  it('a data dir that cannot be created (a file is in the way): exit 4, one line naming it', async () => {
    const blocker = join(tempDir(), 'a-file')
    writeFileSync(blocker, 'not a folder')
    const result = await runServer(['--port', '0', '--data-dir', join(blocker, 'data')])
    expectStartupFailure(result, ExitCode.DATA_DIR_UNUSABLE, 'data-dir-unusable', /data dir .*a-file\/data is not usable/)
  })

  it('an unknown flag: exit 2 with the usage', async () => {
    const result = await runServer(['--nope'])
    expect(result.code).toBe(ExitCode.USAGE)
    expect(result.stderr).toContain('Unknown option --nope')
  })
})

describe('the data dir lock', () => {
  it('a second server on the same data dir refuses to start (exit 5) while the first keeps serving; the lock goes with the first', async () => {
    const dataDir = tempDir()
    const first = await startServerProcess(dataDir)
    cleanups.push(async () => void (first.child.exitCode === null ? await first.kill('SIGKILL') : undefined))
    const second = await runServer(['--port', '0', '--data-dir', dataDir])
    expectStartupFailure(second, ExitCode.DATA_DIR_LOCKED, 'data-dir-locked', new RegExp(`in use by another server \\(pid ${first.child.pid};`))
    expect((await fetch(`http://127.0.0.1:${first.port}/health`)).status).toBe(200)
    expect(await first.kill('SIGTERM')).toBe(0)
    expect(existsSync(join(dataDir, 'server.lock'))).toBe(false)
    const third = await startServerProcess(dataDir)
    expect(await third.kill('SIGTERM')).toBe(0)
  })

  it('a lock left by a server killed with SIGKILL is taken over', async () => {
    const dataDir = tempDir()
    const first = await startServerProcess(dataDir)
    expect(await first.kill('SIGKILL')).toBe('SIGKILL')
    expect(existsSync(join(dataDir, 'server.lock'))).toBe(true)
    const second = await startServerProcess(dataDir)
    expect(await second.kill('SIGTERM')).toBe(0)
  })
})

describe('--help', () => {
  it('lists every flag and its environment variable, and the exit codes', async () => {
    const result = await runServer(['--help'])
    expect(result.code).toBe(0)
    expect(OPTIONS.length).toBeGreaterThanOrEqual(10)
    for (const { flag, env } of OPTIONS) {
      expect(result.stdout).toContain(flag)
      expect(result.stdout).toContain(env)
      // the list is the parser's: each flag is accepted
      const sample: Record<string, string> = { '--log-level': 'warn', '--store': 'postgres://127.0.0.1/mls', '--public-url': 'wss://chat.example/' }
      expect(() => parseConfig([flag, sample[flag] ?? '1'], {})).not.toThrow()
    }
    for (const code of Object.values(ExitCode)) expect(result.stdout).toMatch(new RegExp(`^  ${code}  `, 'm'))
  })
})

describe('Welcome retention', () => {
  it('deletes mailbox Welcomes after 90 days by default; the flag and the environment variable set it, 0 keeps them', () => {
    expect(parseConfig([], {}).retention.welcomeMaxAgeSeconds).toBe(90 * 24 * 3600)
    expect(parseConfig(['--retention-welcome-max-age-seconds', '60'], {}).retention.welcomeMaxAgeSeconds).toBe(60)
    expect(parseConfig([], { MLS_RETENTION_WELCOME_MAX_AGE_SECONDS: '0' }).retention.welcomeMaxAgeSeconds).toBe(0)
  })
})

describe('pnpm start', () => {
  it('hands the process to node: SIGTERM to the pnpm process stops the server, no orphan left', async () => {
    const dataDir = tempDir()
    const pnpm = spawn('pnpm', ['start', '--port', '0', '--data-dir', dataDir], { cwd: REPOSITORY, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<number | null>((resolve) => pnpm.on('close', (code) => resolve(code)))
    const logs: Record<string, unknown>[] = []
    const started = new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: pnpm.stdout }).on('line', (line) => {
        if (!line.startsWith('{')) return
        const record = JSON.parse(line) as Record<string, unknown>
        logs.push(record)
        if (record.event === 'server:started') resolve(record)
      })
      void exited.then((code) => reject(new Error(`pnpm start exited (${code}) before the server started`)))
    })
    const { pid } = await started
    expect(typeof pid).toBe('number')
    cleanups.push(() => {
      try {
        process.kill(pid as number, 'SIGKILL')
      } catch {
        // gone, as it should be
      }
    })
    pnpm.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(logs.map((l) => l.event)).toEqual(expect.arrayContaining(['signal:received', 'server:stopped']))
    // The server process is gone: signal 0 finds no such process.
    expect(() => process.kill(pid as number, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }))
  }, 120_000)
})
