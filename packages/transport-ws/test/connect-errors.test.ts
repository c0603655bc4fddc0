// A connection that cannot be made says why: the underlying cause (refused,
// no such host, an HTTP answer that is no WebSocket upgrade, TLS to a plain
// server) is in the message, in `details` and in `cause`.
import { createServer, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createMlsClient } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '../src/index.js'
import { crypto } from './helpers.js'

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve))
})

/** A plain HTTP server on loopback answering every request with `status`. */
async function httpServer(status: number): Promise<number> {
  const server = createServer((_request, response) => {
    response.writeHead(status, { 'content-type': 'text/plain' })
    response.end('not a WebSocket server')
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

/** A port nothing listens on: taken from the system, then released. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function connectError(url: string): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  const attempt = createMlsClient({
    userId: 'alice',
    deviceId: 'phone',
    crypto,
    store: memoryClientStore(),
    transport: webSockets({ url, WebSocket, requestTimeoutMs: 10_000 })
  })
  const error = await attempt.then(
    (client) => {
      void client.close()
      throw new Error('connected')
    },
    (e: unknown) => e as Error & { code?: string; details?: Record<string, unknown> }
  )
  return error
}

describe('connection failures carry their cause', () => {
  it('nothing listens on the port: ECONNREFUSED', async () => {
    const error = await connectError(`ws://127.0.0.1:${await closedPort()}/`)
    expect(error.code).toBe('TRANSPORT_UNAVAILABLE')
    expect(error.message).toMatch(/connection refused \(ECONNREFUSED\)/)
    expect(error.details).toMatchObject({ cause: 'ECONNREFUSED' })
    expect((error.cause as { code?: string }).code).toBe('ECONNREFUSED')
  })

  it('the host name does not resolve: the DNS error', async () => {
    const error = await connectError('ws://no-such-host.invalid:8080/')
    expect(error.code).toBe('TRANSPORT_UNAVAILABLE')
    expect(error.message).toMatch(/no-such-host\.invalid.*(ENOTFOUND|EAI_AGAIN)/)
    expect(error.details?.cause).toMatch(/^(ENOTFOUND|EAI_AGAIN)$/)
  })

  it('an HTTP server that is no WebSocket server: its HTTP status', async () => {
    const error = await connectError(`ws://127.0.0.1:${await httpServer(404)}/`)
    expect(error.code).toBe('TRANSPORT_UNAVAILABLE')
    expect(error.message).toMatch(/HTTP 404 instead of a WebSocket upgrade/)
    expect(error.details).toMatchObject({ httpStatus: 404 })
  })

  it('wss:// to a plain server: the TLS failure, with the hint', async () => {
    const error = await connectError(`wss://127.0.0.1:${await httpServer(200)}/`)
    expect(error.code).toBe('TRANSPORT_UNAVAILABLE')
    expect(error.message).toMatch(/TLS handshake failed/)
    expect(error.message).toMatch(/ws:\/\//)
    expect(error.cause).toBeInstanceOf(Error)
  })
})
