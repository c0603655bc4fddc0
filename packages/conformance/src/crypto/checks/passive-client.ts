import { expect } from 'vitest'
import { fromHex, toHex } from '@mls/core'
import {
  bytesToBase64,
  decodeMlsMessage,
  joinGroup,
  makePskIndex,
  processPrivateMessage,
  processPublicMessage,
  type CiphersuiteImpl,
  type ClientState
} from '@mls/core/mls'
import { decodeRatchetTree } from '@mls/core/mls-internals'
import { hpkeKeysMatch, signatureKeysMatch, yieldToEventLoop } from './keys.js'

interface PassiveClientVector {
  external_psks: { psk_id: string; psk: string }[]
  key_package: string
  signature_priv: string
  encryption_priv: string
  init_priv: string
  welcome: string
  ratchet_tree: string | null
  initial_epoch_authenticator: string
  epochs: { proposals: string[]; commit: string; epoch_authenticator: string }[]
}

async function processHandshake(state: ClientState, hex: string, psks: Record<string, Uint8Array>, cs: CiphersuiteImpl): Promise<ClientState> {
  const message = decodeMlsMessage(fromHex(hex), 0)?.[0]
  const pskIndex = makePskIndex(state, psks)
  if (message?.wireformat === 'mls_private_message') {
    return (await processPrivateMessage(state, message.privateMessage, pskIndex, cs)).newState
  }
  if (message?.wireformat === 'mls_public_message') {
    return (await processPublicMessage(state, message.publicMessage, pskIndex, cs)).newState
  }
  throw new Error('Expected a PublicMessage or PrivateMessage')
}

/**
 * Check the KeyPackage's keys, join from the Welcome, then apply every
 * proposal and commit, comparing the epoch authenticator after each epoch.
 */
export async function checkPassiveClient(v: PassiveClientVector, cs: CiphersuiteImpl): Promise<void> {
  const keyPackageMessage = decodeMlsMessage(fromHex(v.key_package), 0)?.[0]
  if (keyPackageMessage?.wireformat !== 'mls_key_package') throw new Error('key_package is not an MLSMessage(KeyPackage)')
  const keyPackage = keyPackageMessage.keyPackage
  const privateKeys = {
    initPrivateKey: fromHex(v.init_priv),
    hpkePrivateKey: fromHex(v.encryption_priv),
    signaturePrivateKey: fromHex(v.signature_priv)
  }
  expect(await hpkeKeysMatch(keyPackage.initKey, privateKeys.initPrivateKey, cs.hpke), 'init_priv').toBe(true)
  expect(await hpkeKeysMatch(keyPackage.leafNode.hpkePublicKey, privateKeys.hpkePrivateKey, cs.hpke), 'encryption_priv').toBe(true)
  expect(
    await signatureKeysMatch(keyPackage.leafNode.signaturePublicKey, privateKeys.signaturePrivateKey, cs.signature),
    'signature_priv'
  ).toBe(true)

  const welcomeMessage = decodeMlsMessage(fromHex(v.welcome), 0)?.[0]
  if (welcomeMessage?.wireformat !== 'mls_welcome') throw new Error('welcome is not an MLSMessage(Welcome)')
  const tree = v.ratchet_tree === null ? undefined : decodeRatchetTree(fromHex(v.ratchet_tree), 0)?.[0]
  if (v.ratchet_tree !== null && tree === undefined) throw new Error('Could not decode ratchet_tree')

  const psks: Record<string, Uint8Array> = {}
  for (const p of v.external_psks) psks[bytesToBase64(fromHex(p.psk_id))] = fromHex(p.psk)

  let state = await joinGroup(welcomeMessage.welcome, keyPackage, privateKeys, makePskIndex(undefined, psks), cs, tree)
  expect(toHex(state.keySchedule.epochAuthenticator), 'initial_epoch_authenticator').toBe(v.initial_epoch_authenticator)

  for (const [index, epoch] of v.epochs.entries()) {
    for (const proposal of epoch.proposals) state = await processHandshake(state, proposal, psks, cs)
    state = await processHandshake(state, epoch.commit, psks, cs)
    expect(toHex(state.keySchedule.epochAuthenticator), `epoch_authenticator after epoch ${index}`).toBe(epoch.epoch_authenticator)
    await yieldToEventLoop()
  }
}
