import { spawn, type ChildProcess } from 'node:child_process'

/** What a finished command left behind. */
export interface CommandResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** Wall-clock milliseconds from spawn to exit. */
  readonly milliseconds: number
}

/** Options of `run` and `start`. */
export interface CommandOptions {
  cwd: string
  env?: NodeJS.ProcessEnv
  /** Kill the command (SIGKILL) after this many milliseconds. Default 5 minutes. */
  timeoutMs?: number
  /** `start` only: give the command a writable standard input (`child.stdin`) instead of none. */
  stdin?: boolean
}

/** Run a command to its end and collect its output; never throws on a non-zero exit. */
export function run(command: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 5 * 60_000)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, milliseconds: Date.now() - started })
    })
  })
}

/** `run`, throwing with the command's output when it does not exit 0. */
export async function runOk(command: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} (in ${options.cwd}) exited ${result.code ?? result.signal}\n--- stdout\n${result.stdout.slice(-6000)}\n--- stderr\n${result.stderr.slice(-6000)}`
    )
  }
  return result
}

/** A long-running child whose output is collected as it comes. */
export interface StartedProcess {
  readonly child: ChildProcess
  output(): string
  /** Resolve with the first match of `pattern` in stdout+stderr; reject if the process exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  /** Resolve when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Start a command in the background. */
export function start(command: string, args: readonly string[], options: CommandOptions): StartedProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'] })
  let output = ''
  const listeners = new Set<() => void>()
  const onData = (chunk: Buffer): void => {
    output += chunk.toString()
    for (const listener of listeners) listener()
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      for (const listener of listeners) listener()
      resolve({ code, signal })
    })
  )
  let done = false
  void exited.then(() => (done = true))
  return {
    child,
    output: () => output,
    exited,
    waitFor: (pattern, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const match = output.match(pattern)
          if (match !== null) finish(() => resolve(match))
          else if (done || child.exitCode !== null || child.signalCode !== null) {
            finish(() => reject(new Error(`${command} exited before printing ${String(pattern)}:\n${output.slice(-4000)}`)))
          }
        }
        const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${String(pattern)} from ${command}:\n${output.slice(-4000)}`))), timeoutMs)
        const finish = (settle: () => void): void => {
          clearTimeout(timer)
          listeners.delete(check)
          settle()
        }
        listeners.add(check)
        check()
      })
  }
}
