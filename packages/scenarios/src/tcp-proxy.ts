import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'

/**
 * A loopback TCP proxy in front of a server port, to act on one client's network
 * without touching the others: cut the link (every socket destroyed, new ones
 * refused), blackhole it (sockets stay open, bytes are dropped), restore it,
 * and read back every byte clients sent, per connection.
 */
export interface TcpProxy {
  readonly url: string
  /** The bytes each connection's client sent, in order, one array per connection. */
  readonly captured: readonly Buffer[][]
  cut(): void
  /** Keep every socket open but drop every byte in both directions (a dead network), or only the server's answers. */
  blackhole(direction?: 'both' | 'to-client'): void
  restore(): void
  close(): Promise<void>
}

export async function tcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  const captured: Buffer[][] = []
  let down = false
  let blackholed: false | 'both' | 'to-client' = false
  const server: Server = createServer((inbound) => {
    if (down) {
      inbound.destroy()
      return
    }
    const outbound = connect(targetPort, '127.0.0.1')
    const stream: Buffer[] = []
    captured.push(stream)
    sockets.add(inbound)
    sockets.add(outbound)
    const drop = () => {
      inbound.destroy()
      outbound.destroy()
      sockets.delete(inbound)
      sockets.delete(outbound)
    }
    inbound.on('error', drop).on('close', drop)
    outbound.on('error', drop).on('close', drop)
    inbound.on('data', (chunk: Buffer) => {
      stream.push(chunk)
      if (blackholed !== 'both') outbound.write(chunk)
    })
    outbound.on('data', (chunk: Buffer) => {
      if (blackholed === false) inbound.write(chunk)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `ws://127.0.0.1:${port}/`,
    captured,
    cut() {
      down = true
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
    restore() {
      down = false
      blackholed = false
    },
    blackhole(direction: 'both' | 'to-client' = 'both') {
      blackholed = direction
    },
    close: () =>
      new Promise<void>((resolve) => {
        down = true
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      })
  }
}
