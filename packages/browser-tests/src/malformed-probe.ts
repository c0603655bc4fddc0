import { signChallenge } from '@mls/core'
import { getCiphersuiteFromName } from '@mls/core/mls'
import { nobleCrypto } from '@mls/crypto-noble'
import { webSockets } from '@mls/transport-ws'
import { assert, type Checks } from './result.js'

const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/**
 * Against a server that completes the handshake and then sends a malformed
 * frame on every connection (test/malformed-server.ts), the client end must
 * drop each such connection, really closing the browser's socket, and
 * reconnect. The server side records which sockets the page closed.
 *
 * Browsers refuse `WebSocket.close(code)` from script unless the code is 1000
 * or 3000-4999 (InvalidAccessError); `ws` in Node accepts the 1xxx protocol
 * codes, so only a browser shows whether the client's close really happens.
 */
export async function probeMalformedFrames(checks: Checks, url: string, holdMs = 1500): Promise<void> {
  await checks.run('premise: the page WebSocket refuses close(1003) with InvalidAccessError', () => {
    const ws = new WebSocket(new URL('premise', url).href)
    let thrown = 'nothing'
    try {
      ws.close(1003, 'unsupported data')
    } catch (error) {
      thrown = (error as Error).name
    }
    ws.close(1000)
    assert(thrown === 'InvalidAccessError', `close(1003) threw ${thrown}`)
  })

  await checks.run('the client end keeps reconnecting through malformed frames and closes cleanly', async () => {
    const cs = await nobleCrypto().getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
    const keys = await cs.signature.keygen()
    const clientId = 'probe/browser'
    const transport = webSockets({ url, requestTimeoutMs: 5000, heartbeatIntervalMs: 0, reconnect: { initialDelayMs: 100, maxDelayMs: 100, jitter: 0 } })
    const connection = await transport.connect({
      clientId,
      signaturePublicKey: keys.publicKey,
      ciphersuite: SUITE,
      register: true,
      signChallenge: (challenge, binding) => signChallenge(challenge, clientId, keys.signKey, cs, binding)
    })
    await new Promise((r) => setTimeout(r, holdMs))
    await connection.close()
  })
}
