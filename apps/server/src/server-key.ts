import { createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import type { CryptoProvider } from '@mls/core/interfaces'
import { getCiphersuiteFromName, type CiphersuiteName } from '@mls/core/mls'
import { StartupError } from './startup.js'

/** The suite of the server's key: Ed25519, the signature scheme of the default suite 1. */
const SERVER_KEY_SUITE: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/**
 * The server's one persisted key (docs/server.md, docs/trust-model.md): its
 * signature key pair as the external sender of groups. The login key
 * (protocol v2: it proves itself on every connection and clients sign their
 * login for it) is derived from it (`loginKeyOf`), so both survive restarts
 * and instances sharing the file share both.
 */
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
  const signaturePublicKey = new Uint8Array(Buffer.from(file.signaturePublicKey, 'base64'))
  const signaturePrivateKey = new Uint8Array(Buffer.from(file.signaturePrivateKey, 'base64'))
  if (signaturePrivateKey.length !== 32 || !equal(ed25519PublicKey(signaturePrivateKey), signaturePublicKey)) {
    throw new StartupError('data-dir-unusable', `server key ${path} does not hold a matching Ed25519 key pair`)
  }
  return { ciphersuite: file.ciphersuite, signaturePublicKey, signaturePrivateKey }
}

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/** The public key of a 32-byte Ed25519 private key (seed). */
export function ed25519PublicKey(privateKey: Uint8Array): Uint8Array {
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' })
  return new Uint8Array(Buffer.from(String(createPublicKey(key).export({ format: 'jwk' }).x), 'base64url'))
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index])
}

/** HKDF info of the login key: a key of its own, so no signature made for logins can pass as an MLS one, or the reverse. */
const LOGIN_KEY_INFO = 'mls-toolkit server login key v1'

/**
 * The server's login key (the Ed25519 private key `webSocketServer` proves on
 * every connection), derived from the persisted key by HKDF-SHA256: the same
 * file always gives the same login key.
 */
export function loginKeyOf(serverKey: ServerKey): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', serverKey.signaturePrivateKey, new Uint8Array(0), LOGIN_KEY_INFO, 32))
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
