import { describe, it } from 'vitest'
import type { CiphersuiteName, CryptoProvider } from '@mls/core'
import { createTestNetwork, fourFlows, providerCases } from '../src/index.js'
import { nobleCrypto } from '@mls/crypto-noble'
import { libsodiumCrypto } from '@mls/crypto-libsodium'
import { nodeCrypto } from '@mls/crypto-node'

describe.each(providerCases())('the four flows of the seed ($name)', ({ crypto, ciphersuite }) => {
  it('setup, add B then C, B updates, A removes B: members agree at every step and B reads nothing after', async () => {
    await fourFlowsWith(crypto, ciphersuite, [crypto, crypto, crypto])
  })
})

describe.each(['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519'] as const)(
  'a mixed group: A on node:crypto, B on noble, C on libsodium (%s)',
  (suite) => {
    it('runs the four flows and agrees on every epoch authenticator', async () => {
      await fourFlowsWith(nodeCrypto(), suite, [nodeCrypto(), nobleCrypto(), libsodiumCrypto()])
    })
  }
)

async function fourFlowsWith(serverCrypto: CryptoProvider, ciphersuite: CiphersuiteName, [cryptoA, cryptoB, cryptoC]: CryptoProvider[]) {
  const net = await createTestNetwork({ crypto: serverCrypto, ciphersuite })
  await fourFlows({
    alice: await net.client('alice', { crypto: cryptoA! }),
    bob: await net.client('bob', { crypto: cryptoB! }),
    carol: await net.client('carol', { crypto: cryptoC! }),
    bobCrypto: cryptoB!
  })
}
