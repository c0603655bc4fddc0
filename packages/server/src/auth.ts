import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import type { AbortOptions, ClientId, ServerStore } from '@mls/core/interfaces'
import { ServiceError, equalBytes, throwIfAborted, toHex, verifyChallenge, type CredentialValidator } from '@mls/core'
import type { ServiceLimits } from './limits.js'
import type { AuthService, AuthenticationHook, PresentedCredentials } from './services.js'
import type { Suites } from './suites.js'
import { TokenBuckets } from './token-bucket.js'

const NONCE_BYTES = 16
const MAC_BYTES = 32
/** expiry (u64 ms) || nonce || HMAC-SHA256(secret, expiry || nonce): 56 bytes. */
const CHALLENGE_BYTES = 8 + NONCE_BYTES + MAC_BYTES

export function createAuthService(deps: {
  store: ServerStore
  suites: Suites
  limits: ServiceLimits
  now: () => number
  hook: AuthenticationHook
  validator: CredentialValidator
}): AuthService {
  const { store, suites, limits, now, hook, validator } = deps
  // Challenges are stateless (MACed and time-limited), so a flood of connections cannot evict one;
  // only answered ones are remembered, until they expire, to keep each single-use.
  const secret = globalThis.crypto.getRandomValues(new Uint8Array(32))
  const answered = new Map<string, number>()
  const registrations = new TokenBuckets(limits.registrationsPerHour / 60, limits.registrationBurst, now)

  /** A new registration: the source's budget, then the app's hook. */
  async function admit(presented: PresentedCredentials, parts: { userId: string; deviceId: string }, options?: AbortOptions): Promise<void> {
    if ((await store.getIdentity(presented.clientId, options)) !== undefined) return
    if (presented.source !== undefined) {
      const retryAfterMs = registrations.take(presented.source)
      if (retryAfterMs > 0) {
        throw new ServiceError('RATE_LIMITED', `Too many registrations from ${presented.source}; retry in ${retryAfterMs} ms`, { details: { retryAfterMs } })
      }
    }
    if (hook.authorizeRegistration === undefined) return
    let allowed: boolean
    try {
      allowed = await hook.authorizeRegistration({
        clientId: presented.clientId,
        ...parts,
        signaturePublicKey: presented.signaturePublicKey.slice(),
        ciphersuite: presented.ciphersuite,
        source: presented.source
      })
    } catch (cause) {
      throw new ServiceError('AUTHENTICATION_FAILED', `The registration of ${presented.clientId} was refused`, { cause })
    }
    if (allowed !== true) throw new ServiceError('AUTHENTICATION_FAILED', `The registration of ${presented.clientId} was refused`)
  }

  /** `undefined` when the challenge was issued here, is unexpired and unused (it is now used); otherwise why not. */
  function takeChallenge(challenge: Uint8Array): string | undefined {
    if (!(challenge instanceof Uint8Array) || challenge.length !== CHALLENGE_BYTES) return 'was not issued by this server'
    const signed = challenge.subarray(0, 8 + NONCE_BYTES)
    if (!equalBytes(hmac(sha256, secret, signed), challenge.subarray(8 + NONCE_BYTES))) return 'was not issued by this server'
    const expiresAt = Number(new DataView(challenge.buffer, challenge.byteOffset, 8).getBigUint64(0))
    const time = now()
    if (expiresAt < time) return 'expired'
    for (const [key, expiry] of answered) {
      if (expiry >= time) break
      answered.delete(key)
    }
    const key = toHex(challenge.subarray(8, 8 + NONCE_BYTES))
    if (answered.has(key)) return 'was already used'
    if (answered.size >= limits.maxPendingChallenges) return 'cannot be checked now (too many logins in flight); retry'
    answered.set(key, expiresAt)
    return undefined
  }

  return {
    challenge(): Uint8Array {
      const challenge = new Uint8Array(CHALLENGE_BYTES)
      new DataView(challenge.buffer).setBigUint64(0, BigInt(Math.floor(now() + limits.challengeTtlMs)))
      globalThis.crypto.getRandomValues(challenge.subarray(8, 8 + NONCE_BYTES))
      challenge.set(hmac(sha256, secret, challenge.subarray(0, 8 + NONCE_BYTES)), 8 + NONCE_BYTES)
      return challenge
    },

    async authenticate(credentials: PresentedCredentials, challenge: Uint8Array, signature: Uint8Array, options?: AbortOptions): Promise<ClientId> {
      throwIfAborted(options?.signal)
      const { clientId, signaturePublicKey, ciphersuite, register } = credentials
      const stale = takeChallenge(challenge)
      let parts: { userId: string; deviceId: string }
      try {
        parts = validator.parseClientId(clientId)
      } catch (cause) {
        throw new ServiceError('INVALID_ARGUMENT', `Not a client id: ${JSON.stringify(clientId)}`, { cause })
      }
      if (!suites.isAccepted(ciphersuite)) {
        throw new ServiceError('UNSUPPORTED_CIPHERSUITE', `Ciphersuite ${String(ciphersuite)} is not accepted`, { details: { ciphersuite } })
      }
      if (!(signaturePublicKey instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
        throw new ServiceError('INVALID_ARGUMENT', 'signaturePublicKey and signature must be bytes')
      }
      // Any stale challenge (expired, unknown, used, or not checkable now) is worth a new connection: clients retry it.
      if (stale !== undefined) throw new ServiceError('AUTHENTICATION_FAILED', `The challenge ${stale}`, { details: { reason: 'challenge-expired' } })
      const impl = await suites.impl(ciphersuite)
      if (!(await verifyChallenge(challenge, clientId, signaturePublicKey, signature, impl, credentials.binding))) {
        throw new ServiceError('AUTHENTICATION_FAILED', `The challenge signature of ${clientId} does not verify`)
      }
      if (register) {
        await admit(credentials, parts, options)
        const outcome = await store.registerIdentity(
          { clientId, ...parts, signaturePublicKey: signaturePublicKey.slice(), ciphersuite, registeredAt: now() },
          options
        )
        if (outcome === 'conflict') throw new ServiceError('IDENTITY_CONFLICT', `${clientId} is registered with another signature key`)
        return clientId
      }
      const registered = await store.getIdentity(clientId, options)
      if (registered === undefined) throw new ServiceError('UNKNOWN_IDENTITY', `${clientId} is not registered`)
      if (!equalBytes(registered.signaturePublicKey, signaturePublicKey) || registered.ciphersuite !== ciphersuite) {
        throw new ServiceError('AUTHENTICATION_FAILED', `${clientId} is registered with another signature key`)
      }
      return clientId
    }
  }
}

