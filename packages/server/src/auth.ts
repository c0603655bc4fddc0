import type { AbortOptions, ClientId, ServerStore } from '@mls/core/interfaces'
import { ServiceError, equalBytes, parseClientId, throwIfAborted, toHex, verifyChallenge } from '@mls/core'
import type { ServiceLimits } from './limits.js'
import type { AuthService, PresentedCredentials } from './services.js'
import type { Suites } from './suites.js'

const CHALLENGE_BYTES = 32

export function createAuthService(deps: { store: ServerStore; suites: Suites; limits: ServiceLimits; now: () => number }): AuthService {
  const { store, suites, limits, now } = deps
  const pending = new Map<string, number>()

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
        parts = parseClientId(clientId)
      } catch (cause) {
        throw new ServiceError('INVALID_ARGUMENT', `Not a client id: ${JSON.stringify(clientId)}`, { cause })
      }
      if (!suites.isAccepted(ciphersuite)) {
        throw new ServiceError('UNSUPPORTED_CIPHERSUITE', `Ciphersuite ${String(ciphersuite)} is not accepted`, { details: { ciphersuite } })
      }
      if (!(signaturePublicKey instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
        throw new ServiceError('INVALID_ARGUMENT', 'signaturePublicKey and signature must be bytes')
      }
      if (!fresh) throw new ServiceError('AUTHENTICATION_FAILED', 'The challenge was not issued, expired or was already used')
      const impl = await suites.impl(ciphersuite)
      if (!(await verifyChallenge(challenge, clientId, signaturePublicKey, signature, impl))) {
        throw new ServiceError('AUTHENTICATION_FAILED', `The challenge signature of ${clientId} does not verify`)
      }
      if (register) {
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

