import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { existsSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js')

export interface ServerProcess {
  readonly port: number
  readonly url: string
  readonly child: ChildProcess
  readonly logs: Record<string, unknown>[]
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string>
  kill(signal: NodeJS.Signals): Promise<number | string>
}

/**
 * Start `apps/server` (its built `dist/main.js`) as a real child process and wait until it listens.
 * `options.nodeArgs` go to node (e.g. `--expose-gc`), `options.env` is added to the environment.
 */
export async function startServerProcess(
  dataDir: string,
  port = 0,
  extraArgs: string[] = [],
  options: { nodeArgs?: readonly string[]; env?: Record<string, string> } = {}
): Promise<ServerProcess> {
  if (!existsSync(main)) throw new Error(`${main} is missing: these tests run the built server; run \`pnpm build\` (pnpm test does) first`)
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), main, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } })
  })
  const logs: Record<string, unknown>[] = []
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code ?? -1)))
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const started = new Promise<{ port: number; url: string }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const record = JSON.parse(line) as Record<string, unknown>
        logs.push(record)
        if (record.event === 'server:started') resolve({ port: record.port as number, url: record.url as string })
      } catch {
        // not a log line
      }
    })
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening: ${stderr}`)))
  })
  const { port: actual, url } = await started
  return {
    port: actual,
    url,
    child,
    logs,
    exited,
    kill: (signal) => {
      child.kill(signal)
      return exited
    }
  }
}

/**
 * The payloads a client sent on one connection: skip the HTTP upgrade request,
 * then parse WebSocket frames and unmask them (client frames are XOR-masked, so
 * raw TCP bytes would hide a plaintext).
 */
export function clientPayloads(stream: readonly Buffer[]): Buffer {
  const data = Buffer.concat(stream)
  let offset = data.indexOf('\r\n\r\n')
  if (offset < 0) return Buffer.alloc(0)
  offset += 4
  const out: Buffer[] = []
  while (offset + 2 <= data.length) {
    const second = data[offset + 1]!
    let length = second & 0x7f
    let p = offset + 2
    if (length === 126) {
      length = data.readUInt16BE(p)
      p += 2
    } else if (length === 127) {
      length = Number(data.readBigUInt64BE(p))
      p += 8
    }
    const masked = (second & 0x80) !== 0
    const key = masked ? data.subarray(p, p + 4) : undefined
    if (masked) p += 4
    if (p + length > data.length) break
    const payload = Buffer.from(data.subarray(p, p + length))
    if (key !== undefined) for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i % 4]!
    out.push(payload)
    offset = p + length
  }
  return Buffer.concat(out)
}

/**
 * A loopback TCP front for several server instances, like a load balancer:
 * each new connection goes to the first backend, in the given order, that
 * accepts it. `connections` counts what each backend received.
 */
export interface FailoverFront {
  readonly url: string
  readonly connections: Map<number, number>
  close(): Promise<void>
}

export async function failoverFront(backendPorts: readonly number[]): Promise<FailoverFront> {
  const sockets = new Set<Socket>()
  const connections = new Map<number, number>()
  const server = createServer((inbound) => {
    sockets.add(inbound)
    inbound.pause()
    const tryBackend = (index: number): void => {
      const port = backendPorts[index]
      if (port === undefined) {
        inbound.destroy()
        return
      }
      const outbound = connect(port, '127.0.0.1')
      let established = false
      outbound.once('connect', () => {
        established = true
        sockets.add(outbound)
        connections.set(port, (connections.get(port) ?? 0) + 1)
        inbound.pipe(outbound)
        outbound.pipe(inbound)
        inbound.resume()
      })
      const drop = () => {
        inbound.destroy()
        outbound.destroy()
        sockets.delete(inbound)
        sockets.delete(outbound)
      }
      outbound.on('error', () => (established ? drop() : tryBackend(index + 1)))
      outbound.on('close', () => established && drop())
      inbound.on('error', drop).on('close', () => established && drop())
    }
    tryBackend(0)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `ws://127.0.0.1:${port}/`,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      })
  }
}

/**
 * A loopback TCP port that was free a moment ago. Logins are signed for the
 * URL a client dials (protocol v2), so a test that puts a proxy in front of a
 * server must tell the server both URLs (`--public-url`) before it starts.
 */
export async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as AddressInfo).port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return port
}

/** `--public-url` for a server reached directly on `port` and through `fronts` (proxies, load balancers). */
export function publicUrlArgs(port: number | undefined, fronts: readonly { readonly url: string }[]): string[] {
  return ['--public-url', [...(port === undefined ? [] : [`ws://127.0.0.1:${port}/`]), ...fronts.map((front) => front.url)].join(',')]
}
