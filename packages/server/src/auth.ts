import type { AbortOptions, ClientId, ServerStore } from '@mls/core/interfaces'
import { ServiceError, equalBytes, throwIfAborted, toHex, verifyChallenge, type CredentialValidator } from '@mls/core'
import type { ServiceLimits } from './limits.js'
import type { AuthService, AuthenticationHook, PresentedCredentials } from './services.js'
import type { Suites } from './suites.js'
import { TokenBuckets } from './token-bucket.js'

const CHALLENGE_BYTES = 32

export function createAuthService(deps: {
  store: ServerStore
  suites: Suites
  limits: ServiceLimits
  now: () => number
  hook: AuthenticationHook
  validator: CredentialValidator
}): AuthService {
  const { store, suites, limits, now, hook, validator } = deps
  const pending = new Map<string, number>()
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

  function takeChallenge(challenge: Uint8Array): boolean {
    const key = toHex(challenge)
    const expiresAt = pending.get(key)
    pending.delete(key)
    return expiresAt !== undefined && expiresAt >= now()
  }

  return {
    challenge(): Uint8Array {
      const challenge = globalThis.crypto.getRandomValues(new Uint8Array(CHALLENGE_BYTES))
      const time = now()
      if (pending.size >= limits.maxPendingChallenges) {
        for (const [key, expiresAt] of pending) {
          if (expiresAt < time || pending.size >= limits.maxPendingChallenges) pending.delete(key)
          else break
        }
      }
      pending.set(toHex(challenge), time + limits.challengeTtlMs)
      return challenge
    },

    async authenticate(credentials: PresentedCredentials, challenge: Uint8Array, signature: Uint8Array, options?: AbortOptions): Promise<ClientId> {
      throwIfAborted(options?.signal)
      const { clientId, signaturePublicKey, ciphersuite, register } = credentials
      const fresh = challenge instanceof Uint8Array && takeChallenge(challenge)
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
      if (!fresh) throw new ServiceError('AUTHENTICATION_FAILED', 'The challenge was not issued, expired or was already used', { details: { reason: 'challenge-expired' } })
      const impl = await suites.impl(ciphersuite)
      if (!(await verifyChallenge(challenge, clientId, signaturePublicKey, signature, impl))) {
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

