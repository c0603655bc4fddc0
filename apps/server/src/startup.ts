import { closeSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'

/** Exit codes of `mls-server` (also in `--help` and docs/apps.md). */
export const ExitCode = {
  /** Stopped on SIGTERM or SIGINT after a clean shutdown. */
  OK: 0,
  /** An unexpected failure while running or stopping. */
  FAILURE: 1,
  /** A bad flag, variable or value (for example a port outside 0-65535). */
  USAGE: 2,
  /** The port is taken or may not be bound (EADDRINUSE, EACCES). */
  PORT_UNAVAILABLE: 3,
  /** The data dir cannot be created or written, or its database cannot be opened. */
  DATA_DIR_UNUSABLE: 4,
  /** Another running server holds the data dir's lock. */
  DATA_DIR_LOCKED: 5
} as const

export type StartupReason = 'usage' | 'port-unavailable' | 'data-dir-unusable' | 'data-dir-locked'

const exitCodes: Record<StartupReason, number> = {
  usage: ExitCode.USAGE,
  'port-unavailable': ExitCode.PORT_UNAVAILABLE,
  'data-dir-unusable': ExitCode.DATA_DIR_UNUSABLE,
  'data-dir-locked': ExitCode.DATA_DIR_LOCKED
}

/** Why the server could not start: one clear sentence, a reason and its exit code. */
export class StartupError extends Error {
  readonly reason: StartupReason
  readonly exitCode: number

  constructor(reason: StartupReason, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'StartupError'
    this.reason = reason
    this.exitCode = exitCodes[reason]
  }
}

const code = (error: unknown): string | undefined => (error as { code?: unknown } | null)?.code as string | undefined
const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** Turn the listen error of the HTTP server into a `StartupError` when it is about the port. */
export function listenFailure(error: unknown, host: string, port: number): unknown {
  if (code(error) === 'EADDRINUSE') return new StartupError('port-unavailable', `port ${port} on ${host} is already in use`, { cause: error })
  if (code(error) === 'EACCES') return new StartupError('port-unavailable', `not permitted to listen on port ${port} on ${host}`, { cause: error })
  if (code(error) === 'EADDRNOTAVAIL' || code(error) === 'ENOTFOUND') {
    return new StartupError('port-unavailable', `cannot listen on ${host}: no such local address`, { cause: error })
  }
  return error
}

/** A `StartupError` for a data dir that cannot be used. */
export function dataDirFailure(error: unknown, dataDir: string): StartupError {
  return new StartupError('data-dir-unusable', `data dir ${dataDir} is not usable: ${message(error)}`, { cause: error })
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return code(error) === 'EPERM'
  }
}

/**
 * Take `<dataDir>/server.lock` (it holds the owner's pid) so that a second
 * server on the same data dir refuses to start. The file appears complete or
 * not at all (written aside, then hard-linked into place). A lock whose
 * process is gone (a server killed with SIGKILL) is taken over. Returns the
 * release function.
 */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, 'server.lock')
  const aside = join(dataDir, `server.lock.${process.pid}`)
  try {
    const fd = openSync(aside, 'w')
    writeSync(fd, `${process.pid}\n`)
    closeSync(fd)
  } catch (error) {
    throw dataDirFailure(error, dataDir)
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(aside, path)
        return () => {
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path)
          } catch {
            // already gone
          }
        }
      } catch (error) {
        if (code(error) !== 'EEXIST') throw dataDirFailure(error, dataDir)
      }
      let holder: number
      try {
        holder = Number.parseInt(readFileSync(path, 'utf8'), 10)
      } catch (error) {
        if (code(error) === 'ENOENT') continue // released meanwhile: try again
        throw dataDirFailure(error, dataDir)
      }
      if (holder !== process.pid && alive(holder)) {
        throw new StartupError('data-dir-locked', `data dir ${dataDir} is in use by another server (pid ${holder}; lock file ${path})`)
      }
      try {
        unlinkSync(path) // stale: its server is gone
      } catch (error) {
        if (code(error) !== 'ENOENT') throw dataDirFailure(error, dataDir)
      }
    }
    throw new StartupError('data-dir-locked', `data dir ${dataDir}: could not take ${path}`)
  } finally {
    try {
      unlinkSync(aside)
    } catch {
      // nothing to clean
    }
  }
}
