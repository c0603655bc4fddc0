import { expect } from 'vitest'
import { fromHex, toHex } from '@mls/core'
import { mlsExporter, refhash, signWithLabel, verifyWithLabel, type CiphersuiteImpl, type GroupContext } from '@mls/core/mls'
import {
  computePskSecret,
  createConfirmedHash,
  createInterimHash,
  createSecretTree,
  decodeAuthenticatedContent,
  decryptWithLabel,
  deriveSecret,
  deriveTreeSecret,
  encodeGroupContext,
  encryptWithLabel,
  expandSenderDataKey,
  expandSenderDataNonce,
  expandWithLabel,
  initializeEpoch,
  ratchetToGeneration,
  type PreSharedKeyIdExternal,
  type ReuseGuard
} from '@mls/core/mls-internals'
import { defaultKeyRetentionConfig } from '@mls/core/mls'

interface CryptoBasicsVector {
  ref_hash: { label: string; value: string; out: string }
  expand_with_label: { secret: string; label: string; context: string; length: number; out: string }
  derive_secret: { secret: string; label: string; out: string }
  derive_tree_secret: { secret: string; label: string; generation: number; length: number; out: string }
  sign_with_label: { priv: string; pub: string; content: string; label: string; signature: string }
  encrypt_with_label: {
    priv: string
    pub: string
    label: string
    context: string
    plaintext: string
    kem_output: string
    ciphertext: string
  }
}

export async function checkCryptoBasics(v: CryptoBasicsVector, cs: CiphersuiteImpl): Promise<void> {
  const { ref_hash, expand_with_label, derive_secret, derive_tree_secret, sign_with_label, encrypt_with_label } = v

  expect(toHex(await refhash(ref_hash.label, fromHex(ref_hash.value), cs.hash)), 'RefHash').toBe(ref_hash.out)

  const expanded = await expandWithLabel(
    fromHex(expand_with_label.secret),
    expand_with_label.label,
    fromHex(expand_with_label.context),
    expand_with_label.length,
    cs.kdf
  )
  expect(toHex(expanded), 'ExpandWithLabel').toBe(expand_with_label.out)

  expect(toHex(await deriveSecret(fromHex(derive_secret.secret), derive_secret.label, cs.kdf)), 'DeriveSecret').toBe(
    derive_secret.out
  )

  const treeSecret = await deriveTreeSecret(
    fromHex(derive_tree_secret.secret),
    derive_tree_secret.label,
    derive_tree_secret.generation,
    derive_tree_secret.length,
    cs.kdf
  )
  expect(toHex(treeSecret), 'DeriveTreeSecret').toBe(derive_tree_secret.out)

  const content = fromHex(sign_with_label.content)
  const pub = fromHex(sign_with_label.pub)
  expect(await verifyWithLabel(pub, sign_with_label.label, content, fromHex(sign_with_label.signature), cs.signature), 'VerifyWithLabel').toBe(true)
  const signature = await signWithLabel(fromHex(sign_with_label.priv), sign_with_label.label, content, cs.signature)
  expect(await verifyWithLabel(pub, sign_with_label.label, content, signature, cs.signature), 'SignWithLabel round trip').toBe(true)

  const e = encrypt_with_label
  const privateKey = await cs.hpke.importPrivateKey(fromHex(e.priv))
  const publicKey = await cs.hpke.importPublicKey(fromHex(e.pub))
  const context = fromHex(e.context)
  const decrypted = await decryptWithLabel(privateKey, e.label, context, fromHex(e.kem_output), fromHex(e.ciphertext), cs.hpke)
  expect(toHex(decrypted), 'DecryptWithLabel').toBe(e.plaintext)
  const sealed = await encryptWithLabel(publicKey, e.label, context, fromHex(e.plaintext), cs.hpke)
  const reopened = await decryptWithLabel(privateKey, e.label, context, sealed.enc, sealed.ct, cs.hpke)
  expect(toHex(reopened), 'EncryptWithLabel round trip').toBe(e.plaintext)
}

interface SecretTreeVector {
  sender_data: { sender_data_secret: string; ciphertext: string; key: string; nonce: string }
  encryption_secret: string
  leaves: {
    generation: number
    application_key: string
    application_nonce: string
    handshake_key: string
    handshake_nonce: string
  }[][]
}

export async function checkSecretTree(v: SecretTreeVector, cs: CiphersuiteImpl): Promise<void> {
  const senderDataSecret = fromHex(v.sender_data.sender_data_secret)
  const ciphertext = fromHex(v.sender_data.ciphertext)
  expect(toHex(await expandSenderDataKey(cs, senderDataSecret, ciphertext)), 'sender_data_key').toBe(v.sender_data.key)
  expect(toHex(await expandSenderDataNonce(cs, senderDataSecret, ciphertext)), 'sender_data_nonce').toBe(v.sender_data.nonce)

  let tree = await createSecretTree(v.leaves.length, fromHex(v.encryption_secret), cs.kdf)
  const config = { ...defaultKeyRetentionConfig, maximumForwardRatchetSteps: 1 << 20 }
  for (const [leafIndex, generations] of v.leaves.entries()) {
    for (const g of generations) {
      const senderData = { leafIndex, generation: g.generation, reuseGuard: new Uint8Array(4) as ReuseGuard }
      const application = await ratchetToGeneration(tree, senderData, 'application', config, cs)
      expect(application.generation).toBe(g.generation)
      expect(toHex(application.key), `application key leaf ${leafIndex} gen ${g.generation}`).toBe(g.application_key)
      expect(toHex(application.nonce), `application nonce leaf ${leafIndex} gen ${g.generation}`).toBe(g.application_nonce)
      const handshake = await ratchetToGeneration(application.newTree, senderData, 'commit', config, cs)
      expect(handshake.generation).toBe(g.generation)
      expect(toHex(handshake.key), `handshake key leaf ${leafIndex} gen ${g.generation}`).toBe(g.handshake_key)
      expect(toHex(handshake.nonce), `handshake nonce leaf ${leafIndex} gen ${g.generation}`).toBe(g.handshake_nonce)
      tree = handshake.newTree
    }
  }
}

interface KeyScheduleVector {
  group_id: string
  initial_init_secret: string
  epochs: {
    tree_hash: string
    commit_secret: string
    psk_secret: string
    confirmed_transcript_hash: string
    group_context: string
    joiner_secret: string
    welcome_secret: string
    init_secret: string
    sender_data_secret: string
    encryption_secret: string
    exporter_secret: string
    epoch_authenticator: string
    external_secret: string
    confirmation_key: string
    membership_key: string
    resumption_psk: string
    external_pub: string
    exporter: { label: string; context: string; length: number; secret: string }
  }[]
}

export async function checkKeySchedule(v: KeyScheduleVector & { cipher_suite: number }, cs: CiphersuiteImpl): Promise<void> {
  let initSecret = fromHex(v.initial_init_secret)
  for (const [index, epoch] of v.epochs.entries()) {
    const groupContext: GroupContext = {
      version: 'mls10',
      cipherSuite: cs.name,
      groupId: fromHex(v.group_id),
      epoch: BigInt(index),
      treeHash: fromHex(epoch.tree_hash),
      confirmedTranscriptHash: fromHex(epoch.confirmed_transcript_hash),
      extensions: []
    }
    expect(toHex(encodeGroupContext(groupContext)), `group_context epoch ${index}`).toBe(epoch.group_context)
    const secrets = await initializeEpoch(initSecret, fromHex(epoch.commit_secret), groupContext, fromHex(epoch.psk_secret), cs.kdf)
    const ks = secrets.keySchedule
    expect(toHex(secrets.joinerSecret), `joiner_secret epoch ${index}`).toBe(epoch.joiner_secret)
    expect(toHex(secrets.welcomeSecret), `welcome_secret epoch ${index}`).toBe(epoch.welcome_secret)
    expect(toHex(secrets.encryptionSecret), `encryption_secret epoch ${index}`).toBe(epoch.encryption_secret)
    expect(toHex(ks.initSecret), `init_secret epoch ${index}`).toBe(epoch.init_secret)
    expect(toHex(ks.senderDataSecret), `sender_data_secret epoch ${index}`).toBe(epoch.sender_data_secret)
    expect(toHex(ks.exporterSecret), `exporter_secret epoch ${index}`).toBe(epoch.exporter_secret)
    expect(toHex(ks.externalSecret), `external_secret epoch ${index}`).toBe(epoch.external_secret)
    expect(toHex(ks.confirmationKey), `confirmation_key epoch ${index}`).toBe(epoch.confirmation_key)
    expect(toHex(ks.membershipKey), `membership_key epoch ${index}`).toBe(epoch.membership_key)
    expect(toHex(ks.resumptionPsk), `resumption_psk epoch ${index}`).toBe(epoch.resumption_psk)
    expect(toHex(ks.epochAuthenticator), `epoch_authenticator epoch ${index}`).toBe(epoch.epoch_authenticator)

    const { publicKey } = await cs.hpke.deriveKeyPair(fromHex(epoch.external_secret))
    expect(toHex(await cs.hpke.exportPublicKey(publicKey)), `external_pub epoch ${index}`).toBe(epoch.external_pub)

    const exported = await mlsExporter(ks.exporterSecret, epoch.exporter.label, fromHex(epoch.exporter.context), epoch.exporter.length, cs)
    expect(toHex(exported), `exporter epoch ${index}`).toBe(epoch.exporter.secret)
    initSecret = ks.initSecret
  }
}

interface PskSecretVector {
  psks: { psk_id: string; psk: string; psk_nonce: string }[]
  psk_secret: string
}

export async function checkPskSecret(v: PskSecretVector, cs: CiphersuiteImpl): Promise<void> {
  const psks = v.psks.map((p): [PreSharedKeyIdExternal, Uint8Array] => [
    { psktype: 'external', pskId: fromHex(p.psk_id), pskNonce: fromHex(p.psk_nonce) },
    fromHex(p.psk)
  ])
  expect(toHex(await computePskSecret(psks, cs)), 'psk_secret').toBe(v.psk_secret)
}

interface TranscriptHashesVector {
  confirmation_key: string
  authenticated_content: string
  interim_transcript_hash_before: string
  confirmed_transcript_hash_after: string
  interim_transcript_hash_after: string
}

export async function checkTranscriptHashes(v: TranscriptHashesVector, cs: CiphersuiteImpl): Promise<void> {
  const decoded = decodeAuthenticatedContent(fromHex(v.authenticated_content), 0)
  if (decoded === undefined) throw new Error('Could not decode authenticated_content')
  const [authenticated] = decoded
  const { content, auth } = authenticated
  if (content.contentType !== 'commit' || auth.contentType !== 'commit') throw new Error('authenticated_content is not a commit')
  const confirmedAfter = fromHex(v.confirmed_transcript_hash_after)
  expect(await cs.hash.verifyMac(fromHex(v.confirmation_key), auth.confirmationTag, confirmedAfter), 'confirmation_tag').toBe(true)
  const confirmed = await createConfirmedHash(
    fromHex(v.interim_transcript_hash_before),
    { wireformat: authenticated.wireformat, content, signature: auth.signature },
    cs.hash
  )
  expect(toHex(confirmed), 'confirmed_transcript_hash_after').toBe(v.confirmed_transcript_hash_after)
  expect(toHex(await createInterimHash(confirmedAfter, auth.confirmationTag, cs.hash)), 'interim_transcript_hash_after').toBe(
    v.interim_transcript_hash_after
  )
}
