/**
 * A throwaway PostgreSQL cluster for tests: Debian's binaries (installed by
 * scripts/ensure-postgres.mjs when missing), `initdb` under a new temp dir,
 * started on a free 127.0.0.1 port with its socket in that dir, removed by
 * `stop()`. As root, the server runs as the `postgres` user (PostgreSQL
 * refuses to run as root). `fsync` is off unless `{ durable: true }` (the
 * benchmarks): the tests kill processes, not the machine, so the OS cache is
 * durable enough and the tests stay fast.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ENSURE_POSTGRES = fileURLToPath(new URL('../../../scripts/ensure-postgres.mjs', import.meta.url))


async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

export async function startCluster(settings = {}) {
  const bin = execFileSync(process.execPath, [ENSURE_POSTGRES], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 15 * 60_000 }).trim()
  const dir = mkdtempSync(join(tmpdir(), 'mls-postgres-'))
  const data = join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  let uid = 0
  let gid = 0
  if (asRoot) {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(dir, uid, gid)
    chmodSync(dir, 0o700)
  }
  const run = (command, args) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]] : [join(bin, command), args]
    return execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, cwd: dir })
  }
  run('initdb', ['-D', data, '-U', 'mls', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'])
  const port = await freePort()
  const options = [`-c listen_addresses=127.0.0.1`, `-p ${port}`, `-k ${dir}`, '-c max_connections=200']
  if (settings.durable !== true) options.push('-c fsync=off', '-c full_page_writes=off')
  const start = () => run('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', join(dir, 'server.log'), '-o', options.join(' ')])
  try {
    start()
  } catch (error) {
    let serverLog = ''
    try {
      serverLog = readFileSync(join(dir, 'server.log'), 'utf8')
    } catch {
      // no log yet
    }
    throw new Error(`PostgreSQL did not start: ${String(error)}\n${serverLog}`)
  }
  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    process.off('exit', stop)
    try {
      run('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w'])
    } catch {
      // already down (a test killed it)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  process.on('exit', stop)
  const urlOf = (database) => `postgres://mls@127.0.0.1:${port}/${database}`
  return {
    url: urlOf('postgres'),
    urlOf,
    createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`)
      execFileSync(join(bin, 'psql'), ['-q', '-v', 'ON_ERROR_STOP=1', '-d', urlOf('postgres'), '-c', `CREATE DATABASE ${name}`], { stdio: ['ignore', 'pipe', 'pipe'] })
      return urlOf(name)
    },
    dump: (url, schema) =>
      execFileSync(join(bin, 'pg_dump'), ['--schema', schema, '--no-owner', '--no-privileges', '--no-comments', '-d', url], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
        .split('\n')
        .filter((line) => !/^\\(un)?restrict /.test(line))
        .join('\n'),
    runScript(url, sql) {
      execFileSync(join(bin, 'psql'), ['-q', '-v', 'ON_ERROR_STOP=1', '-d', url], { input: sql, stdio: ['pipe', 'pipe', 'pipe'] })
    },
    killServer() {
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
      process.kill(pid, 'SIGKILL')
      // The postmaster's children notice it died and exit; wait until none holds the data dir.
      for (let i = 0; i < 500; i++) {
        try {
          process.kill(pid, 0)
        } catch {
          break
        }
        execFileSync('sleep', ['0.01'])
      }
    },
    restart() {
      // After SIGKILL, children of the old postmaster may still hold shared memory: retry until it starts.
      for (let attempt = 1; ; attempt++) {
        try {
          start()
          return
        } catch (error) {
          if (attempt >= 50) throw error
          execFileSync('sleep', ['0.1'])
        }
      }
    },
    stop
  }
}
