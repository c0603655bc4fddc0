import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const REPOSITORY = fileURLToPath(new URL('../../../', import.meta.url))
export const CHAT_MAIN = `${REPOSITORY}apps/cli/dist/main.js`
const SERVER_MAIN = `${REPOSITORY}apps/server/dist/main.js`
const ENSURE_TMUX = `${REPOSITORY}scripts/ensure-tmux.mjs`

/** Install tmux when missing (the repo's own script), or fail with its reason. */
export function ensureTmux(): void {
  execFileSync(process.execPath, [ENSURE_TMUX], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 })
  for (const main of [CHAT_MAIN, SERVER_MAIN]) {
    if (!existsSync(main)) throw new Error(`${main} is missing: these tests run the built apps; run \`pnpm build\` (pnpm test does) first`)
  }
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** The real `apps/server` as a child process, resolved once it logged `server:started`. */
export async function startServer(dataDir: string, port: number): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [SERVER_MAIN, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"server:started"')) resolve()
    })
    void exited.then(() => reject(new Error(`server exited before listening: ${stderr}`)))
  })
  return {
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
  }
}

/**
 * A real terminal: a detached tmux session on a private tmux server, running
 * one command; typed into with send-keys, read with capture-pane.
 */
export class Terminal {
  constructor(
    private readonly socket: string,
    readonly name: string
  ) {}

  static open(socket: string, name: string, command: readonly string[]): Terminal {
    execFileSync('tmux', ['-L', socket, '-f', '/dev/null', 'new-session', '-d', '-s', name, '-x', '160', '-y', '50', ...command])
    execFileSync('tmux', ['-L', socket, 'set-option', '-t', name, 'history-limit', '5000'])
    return new Terminal(socket, name)
  }

  /** Type text (literally, no Enter). */
  type(text: string): void {
    execFileSync('tmux', ['-L', this.socket, 'send-keys', '-t', this.name, '-l', text])
  }

  /** Type a line and press Enter. */
  line(text: string): void {
    this.type(text)
    execFileSync('tmux', ['-L', this.socket, 'send-keys', '-t', this.name, 'Enter'])
  }

  /** Everything on the screen and in its scrollback, wrapped lines joined. */
  screen(): string {
    return execFileSync('tmux', ['-L', this.socket, 'capture-pane', '-p', '-J', '-S', '-5000', '-t', this.name], { encoding: 'utf8' })
  }

  /** The line the cursor is on (the prompt and what is being typed). */
  cursorLine(): string {
    const y = Number(execFileSync('tmux', ['-L', this.socket, 'display-message', '-p', '-t', this.name, '#{cursor_y}'], { encoding: 'utf8' }).trim())
    return execFileSync('tmux', ['-L', this.socket, 'capture-pane', '-p', '-t', this.name], { encoding: 'utf8' }).split('\n')[y] ?? ''
  }

  /** Whether the tmux session (the command in it) still runs. */
  alive(): boolean {
    try {
      execFileSync('tmux', ['-L', this.socket, 'has-session', '-t', this.name], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }

  /**
   * Wait until the screen matches (`count` times for a string); returns the
   * match. Polls the screen: the condition is what is waited on.
   */
  async waitFor(pattern: RegExp | string, options: { count?: number; timeoutMs?: number } = {}): Promise<RegExpMatchArray> {
    const deadline = Date.now() + (options.timeoutMs ?? 20_000)
    const regex = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g') : new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`)
    for (;;) {
      const screen = this.alive() ? this.screen() : ''
      const matches = [...screen.matchAll(regex)]
      if (matches.length >= (options.count ?? 1)) return matches[matches.length - 1]!
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out waiting for ${String(pattern)} x${options.count ?? 1}; screen:\n${screen}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

export function killTmuxServer(socket: string): void {
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' })
  } catch {
    // no server left
  }
}
