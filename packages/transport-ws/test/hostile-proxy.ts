import { WebSocket, WebSocketServer } from 'ws'
import { decodeClientFrame, decodeServerFrame, type ClientFrame, type ServerFrame } from '../src/codec.js'

/** One client connection through the proxy, with its upstream connection to the real server. */
export interface ProxiedConnection {
  /** 0 for the first connection through the proxy, then 1, 2, … */
  readonly index: number
  /** Request type by request id, as the client sent them on this connection. */
  readonly requests: Map<number, string>
  /** Send bytes to the client. */
  toClient(bytes: Uint8Array): void
  /** Cut the client's connection abruptly (no close frame: the client sees 1006). */
  dropClient(): void
}

/**
 * What the hostile proxy does with each frame: return the bytes to forward
 * (the frame's own bytes to pass it through), or `undefined` to swallow it.
 * Hooks may be async; each direction keeps its order.
 */
export interface ProxyHooks {
  fromServer?(frame: ServerFrame, bytes: Uint8Array, connection: ProxiedConnection): Uint8Array | undefined | Promise<Uint8Array | undefined>
  fromClient?(frame: ClientFrame, bytes: Uint8Array, connection: ProxiedConnection): Uint8Array | undefined | Promise<Uint8Array | undefined>
}

export interface HostileProxy {
  /** `ws://127.0.0.1:port/` to give the client. */
  readonly url: string
  /** Connections the proxy accepted so far. */
  readonly connections: number
  /** Requests by type the clients sent through the proxy. */
  readonly requests: Map<string, number>
  hooks: ProxyHooks
  close(): Promise<void>
}

/**
 * A man in the middle on loopback, in front of a real server: it decodes the
 * protocol both ways and lets a test rewrite, swallow or inject frames, or
 * drop the client, to play a hostile or broken server against a real client.
 */
export async function hostileProxy(target: string, hooks: ProxyHooks = {}): Promise<HostileProxy> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const address = server.address() as { port: number }
  const sockets = new Set<WebSocket>()
  const state = { connections: 0, requests: new Map<string, number>(), hooks }

  server.on('connection', (client: WebSocket) => {
    const upstream = new WebSocket(target)
    upstream.binaryType = 'nodebuffer'
    sockets.add(client)
    sockets.add(upstream)
    const opened = new Promise<void>((resolve) => upstream.once('open', () => resolve()))
    const connection: ProxiedConnection = {
      index: state.connections++,
      requests: new Map(),
      toClient: (bytes) => {
        if (client.readyState === WebSocket.OPEN) client.send(bytes)
      },
      dropClient: () => {
        client.terminate()
        upstream.terminate()
      }
    }
    let toServerChain = Promise.resolve()
    let toClientChain = Promise.resolve()
    client.on('message', (data: Buffer) => {
      const bytes = new Uint8Array(data)
      toServerChain = toServerChain.then(async () => {
        let forward: Uint8Array | undefined = bytes
        try {
          const frame = decodeClientFrame(bytes)
          connection.requests.set(frame.requestId, frame.request.type)
          state.requests.set(frame.request.type, (state.requests.get(frame.request.type) ?? 0) + 1)
          if (state.hooks.fromClient !== undefined) forward = await state.hooks.fromClient(frame, bytes, connection)
        } catch {
          // not a frame this proxy understands: pass it on
        }
        await opened
        if (forward !== undefined && upstream.readyState === WebSocket.OPEN) upstream.send(forward)
      })
    })
    upstream.on('message', (data: Buffer) => {
      const bytes = new Uint8Array(data)
      toClientChain = toClientChain.then(async () => {
        let forward: Uint8Array | undefined = bytes
        try {
          const frame = decodeServerFrame(bytes)
          if (state.hooks.fromServer !== undefined) forward = await state.hooks.fromServer(frame, bytes, connection)
        } catch {
          // pass it on
        }
        if (forward !== undefined) connection.toClient(forward)
      })
    })
    const closeWith = (socket: WebSocket, code: number, reason: Buffer): void => {
      const sendable = code === 1000 || (code >= 3000 && code <= 4999)
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        if (sendable) socket.close(code, reason)
        else socket.terminate()
      }
    }
    client.on('close', (code, reason) => closeWith(upstream, code, reason))
    upstream.on('close', (code, reason) => void toClientChain.then(() => closeWith(client, code, reason)))
    client.on('error', () => undefined)
    upstream.on('error', () => undefined)
  })

  return {
    url: `ws://127.0.0.1:${address.port}/`,
    get connections() {
      return state.connections
    },
    requests: state.requests,
    get hooks() {
      return state.hooks
    },
    set hooks(value: ProxyHooks) {
      state.hooks = value
    },
    async close() {
      for (const socket of sockets) socket.terminate()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
