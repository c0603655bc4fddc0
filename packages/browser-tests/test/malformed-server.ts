import { WebSocketServer, type WebSocket } from 'ws'
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { decodeClientFrame, encodeChallenge, encodeResponse, serverProofContent } from '@mls/transport-ws'

export interface SocketRecord {
  readonly opened: number
  /** Close code the server saw, or undefined while the socket is open. */
  code: number | undefined
  reason: string
  /** Whether the server sent the malformed frame (after a completed handshake). */
  poisoned: boolean
}

export interface MalformedServer {
  readonly url: string
  readonly sockets: readonly SocketRecord[]
  close(): Promise<void>
}

/**
 * A WebSocket server that speaks just enough of protocol v1 to complete the
 * handshake (challenge, then any `authenticate` is accepted) and then sends a
 * frame that does not decode. Connections to `/premise` are ignored.
 */
export async function malformedServer(): Promise<MalformedServer> {
  const sockets: SocketRecord[] = []
  const open = new Set<WebSocket>()
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  // It proves an Ed25519 key like a real server, so clients get past the handshake to the malformed frame.
  const { privateKey } = generateKeyPairSync('ed25519')
  const serverKey = new Uint8Array(Buffer.from(String(createPublicKey(privateKey).export({ format: 'jwk' }).x), 'base64url'))
  wss.on('connection', (ws, req) => {
    open.add(ws)
    ws.on('close', () => open.delete(ws))
    ws.on('error', () => undefined)
    if (req.url === '/premise') return
    const record: SocketRecord = { opened: Date.now(), code: undefined, reason: '', poisoned: false }
    sockets.push(record)
    ws.on('close', (code, reason) => {
      record.code = code
      record.reason = reason.toString()
    })
    const challenge = new Uint8Array(56).fill(7)
    ws.send(encodeChallenge(challenge, 1 << 20, serverKey, new Uint8Array(sign(null, serverProofContent(challenge), privateKey))))
    ws.on('message', (data: Buffer) => {
      const frame = decodeClientFrame(new Uint8Array(data))
      if (frame.request.type !== 'authenticate') return
      ws.send(encodeResponse(frame.requestId, { type: 'authenticate', clientId: frame.request.clientId, maxFrameBytes: 1 << 20 }))
      ws.send(new Uint8Array([0xff, 0xee, 0xdd, 0xcc, 0xbb]))
      record.poisoned = true
    })
  })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  const { port } = wss.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}/`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of open) ws.terminate()
        wss.close(() => resolve())
      })
  }
}
