import { expect } from 'vitest'
import { fromHex } from '@mls/core'
import { decodeMlsMessage, makeKeyPackageRef, type CiphersuiteImpl } from '@mls/core/mls'
import {
  constantTimeEqual,
  decryptGroupInfo,
  decryptGroupSecrets,
  verifyGroupInfoConfirmationTag,
  verifyGroupInfoSignature
} from '@mls/core/mls-internals'

interface WelcomeVector {
  init_priv: string
  signer_pub: string
  key_package: string
  welcome: string
}

export async function checkWelcome(v: WelcomeVector, cs: CiphersuiteImpl): Promise<void> {
  const welcomeMessage = decodeMlsMessage(fromHex(v.welcome), 0)?.[0]
  if (welcomeMessage?.wireformat !== 'mls_welcome') throw new Error('welcome is not an MLSMessage(Welcome)')
  const keyPackageMessage = decodeMlsMessage(fromHex(v.key_package), 0)?.[0]
  if (keyPackageMessage?.wireformat !== 'mls_key_package') throw new Error('key_package is not an MLSMessage(KeyPackage)')
  const welcome = welcomeMessage.welcome

  const ref = await makeKeyPackageRef(keyPackageMessage.keyPackage, cs.hash)
  expect(welcome.secrets.some((s) => constantTimeEqual(s.newMember, ref)), 'welcome has an entry for key_package').toBe(true)

  const initKey = await cs.hpke.importPrivateKey(fromHex(v.init_priv))
  const groupSecrets = await decryptGroupSecrets(initKey, ref, welcome, cs.hpke)
  if (groupSecrets === undefined) throw new Error('Could not decrypt the group secrets')

  const pskSecret = new Uint8Array(cs.kdf.size)
  const groupInfo = await decryptGroupInfo(welcome, groupSecrets.joinerSecret, pskSecret, cs)
  if (groupInfo === undefined) throw new Error('Could not decrypt the group info')
  expect(await verifyGroupInfoSignature(groupInfo, fromHex(v.signer_pub), cs.signature), 'group info signature').toBe(true)
  expect(await verifyGroupInfoConfirmationTag(groupInfo, groupSecrets.joinerSecret, pskSecret, cs), 'confirmation tag').toBe(true)
}
