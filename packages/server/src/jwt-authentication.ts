import { jwtVerify, type CryptoKey, type JWK, type JWTVerifyGetKey, type KeyObject } from 'jose'
import type { AuthenticationHook, ClaimRequest } from './services.js'

/** Options of `jwtAuthentication`. */
export interface JwtAuthenticationInit {
  /**
   * The login server's verification key: a public key (`CryptoKey`,
   * `KeyObject`, JWK), an HMAC secret (bytes), or a key getter such as jose's
   * `createRemoteJWKSet(url)`.
   */
  key: CryptoKey | KeyObject | JWK | Uint8Array | JWTVerifyGetKey
  /** Accepted `alg` values, for example `['ES256']`. Required: no algorithm is accepted by default. */
  algorithms: readonly string[]
  /** Required `iss`, when set. */
  issuer?: string
  /** Required `aud` (the token must name this server), when set. */
  audience?: string
  /** Tolerated clock skew, in seconds. Default 60. */
  clockToleranceSeconds?: number
  /** Largest accepted token age from `iat`, in seconds (the token must carry `iat`). Default 600. */
  maxAgeSeconds?: number
}

/**
 * An `AuthenticationHook` that binds user ids to the accounts of an app's
 * login server: a device may claim the user id `u` only with a JWT (compact
 * JWS, as `MlsClientInit.claimProof`) that verifies under `key`, is fresh,
 * and has `sub` equal to `u`. Registration is not gated (an identity that is
 * not in a device list is never served to anyone). Verification uses `jose`.
 */
export function jwtAuthentication(init: JwtAuthenticationInit): AuthenticationHook {
  if (!Array.isArray(init.algorithms) || init.algorithms.length === 0) throw new TypeError('jwtAuthentication needs at least one algorithm')
  const options = {
    algorithms: [...init.algorithms],
    ...(init.issuer === undefined ? {} : { issuer: init.issuer }),
    ...(init.audience === undefined ? {} : { audience: init.audience }),
    clockTolerance: init.clockToleranceSeconds ?? 60,
    maxTokenAge: init.maxAgeSeconds ?? 600,
    requiredClaims: ['sub', 'iat']
  }
  const decoder = new TextDecoder('utf-8', { fatal: true })
  return {
    async authorizeClaim(request: ClaimRequest): Promise<boolean> {
      if (request.proof.length === 0) return false
      let token: string
      try {
        token = decoder.decode(request.proof)
      } catch {
        return false
      }
      try {
        const { payload } =
          typeof init.key === 'function' ? await jwtVerify(token, init.key, options) : await jwtVerify(token, init.key as CryptoKey | KeyObject | JWK | Uint8Array, options)
        return payload.sub === request.userId
      } catch {
        return false
      }
    }
  }
}
