import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** What `mls-chat` is told, from flags or environment variables. */
export interface ChatOptions {
  /** The server's WebSocket URL. `--server`, `MLS_CHAT_SERVER`. Default `ws://127.0.0.1:8080`. */
  server: string
  /** `--user`, `MLS_CHAT_USER`. Required. */
  user: string
  /** `--device`, `MLS_CHAT_DEVICE`. Default `cli`. */
  device: string
  /** Where identity, groups and history are kept. `--data-dir`, `MLS_CHAT_DATA_DIR`. Default `~/.mls-chat`. */
  dataDir: string
}

export const USAGE = `Usage: mls-chat --user <id> [--device <id>] [--server ws://host:port] [--data-dir <folder>]

An end-to-end encrypted group chat (MLS, RFC 9420) in the terminal.
  --user <id>        your user id (MLS_CHAT_USER); the first device to connect claims it
  --device <id>      this device's id (MLS_CHAT_DEVICE, default cli)
  --server <url>     the mls-server to use (MLS_CHAT_SERVER, default ws://127.0.0.1:8080; start one with pnpm start)
  --data-dir <dir>   identity, groups and message history (MLS_CHAT_DATA_DIR, default ~/.mls-chat)
  --help             this text
Type /help in the chat for its commands.`

/** Thrown for a bad command line; `help` for --help. */
export class OptionsError extends Error {
  constructor(message: string, readonly help = false) {
    super(message)
  }
}

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ChatOptions {
  const flags: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') throw new OptionsError(USAGE, true)
    const [name, inline] = arg.split('=', 2) as [string, string | undefined]
    if (!['--server', '--user', '--device', '--data-dir'].includes(name)) throw new OptionsError(`unknown option ${arg}\n${USAGE}`)
    const value = inline ?? argv[++i]
    if (value === undefined || value.length === 0) throw new OptionsError(`${name} needs a value`)
    flags[name] = value
  }
  const user = flags['--user'] ?? env.MLS_CHAT_USER
  if (user === undefined) throw new OptionsError(`--user is required\n${USAGE}`)
  const server = flags['--server'] ?? env.MLS_CHAT_SERVER ?? 'ws://127.0.0.1:8080'
  if (!/^wss?:\/\//.test(server)) throw new OptionsError(`--server must be a ws:// or wss:// URL, got ${server}`)
  return {
    server,
    user,
    device: flags['--device'] ?? env.MLS_CHAT_DEVICE ?? 'cli',
    dataDir: resolve(flags['--data-dir'] ?? env.MLS_CHAT_DATA_DIR ?? join(homedir(), '.mls-chat'))
  }
}
