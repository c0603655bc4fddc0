import { readFileSync, writeFileSync } from 'node:fs'
import type { CryptoProvider } from '@mls/core/interfaces'
import { getCiphersuiteFromName, type CiphersuiteName } from '@mls/core/mls'
import { StartupError } from './startup.js'

/** The suite of the server's key: Ed25519, the signature scheme of the default suite 1. */
const SERVER_KEY_SUITE: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/** The server's signature key pair as an external sender of groups (docs/server.md, docs/trust-model.md). */
export interface ServerKey {
  readonly ciphersuite: CiphersuiteName
  readonly signaturePublicKey: Uint8Array
  readonly signaturePrivateKey: Uint8Array
}

interface ServerKeyFile {
  version: 1
  ciphersuite: CiphersuiteName
  signaturePublicKey: string
  signaturePrivateKey: string
}

function parse(text: string, path: string): ServerKey {
  let file: Partial<ServerKeyFile>
  try {
    file = JSON.parse(text) as Partial<ServerKeyFile>
  } catch (cause) {
    throw new StartupError('data-dir-unusable', `server key ${path} is not JSON`, { cause })
  }
  if (file.version !== 1 || file.ciphersuite !== SERVER_KEY_SUITE || typeof file.signaturePublicKey !== 'string' || typeof file.signaturePrivateKey !== 'string') {
    throw new StartupError('data-dir-unusable', `server key ${path} is not a version 1 ${SERVER_KEY_SUITE} key file`)
  }
  return {
    ciphersuite: file.ciphersuite,
    signaturePublicKey: new Uint8Array(Buffer.from(file.signaturePublicKey, 'base64')),
    signaturePrivateKey: new Uint8Array(Buffer.from(file.signaturePrivateKey, 'base64'))
  }
}

/**
 * The server's key from `path`, generated there on first start (owner-only
 * file, created exclusively so two starts cannot both write one) and read
 * back unchanged on every later start: clients pin it on first use.
 */
export async function loadOrCreateServerKey(path: string, crypto: CryptoProvider): Promise<ServerKey> {
  try {
    return parse(readFileSync(path, 'utf8'), path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (error instanceof StartupError) throw error
      throw new StartupError('data-dir-unusable', `server key ${path} cannot be read: ${(error as Error).message}`, { cause: error })
    }
  }
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SERVER_KEY_SUITE))
  const keys = await cs.signature.keygen()
  const file: ServerKeyFile = {
    version: 1,
    ciphersuite: SERVER_KEY_SUITE,
    signaturePublicKey: Buffer.from(keys.publicKey).toString('base64'),
    signaturePrivateKey: Buffer.from(keys.signKey).toString('base64')
  }
  try {
    writeFileSync(path, `${JSON.stringify(file)}\n`, { flag: 'wx', mode: 0o600 })
  } catch (error) {
    // Another start wrote it first: use that one.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return parse(readFileSync(path, 'utf8'), path)
    throw new StartupError('data-dir-unusable', `server key ${path} cannot be written: ${(error as Error).message}`, { cause: error })
  }
  return { ciphersuite: SERVER_KEY_SUITE, signaturePublicKey: keys.publicKey, signaturePrivateKey: keys.signKey }
}
