/**
 * The crypto conformance suite: the RFC 9420 test vectors, run against a
 * crypto provider for every ciphersuite it claims, plus its contract on
 * unsupported suites and bad input.
 *
 * A provider package calls it from one small file, `test/conformance.test.ts`:
 *
 * ```ts
 * import { cryptoConformanceSuite } from '@mls/conformance/crypto'
 * import { nodeCrypto } from '../src/index.js'
 *
 * cryptoConformanceSuite({ name: 'node', provider: nodeCrypto() })
 * ```
 *
 * Vectors are read from `../shared/test-vectors` beside the repository root,
 * or from `$MLS_TEST_VECTORS` (see `resolveVectorsDir`); a missing folder
 * fails the run. After the run, the suite prints one line per ciphersuite:
 * `vectors passed/run`, overall and per file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CryptoProvider } from '@mls/core'
import { ciphersuites, getCiphersuiteFromName, type CiphersuiteImpl, type CiphersuiteName } from '@mls/core/mls'
import { checkBadInput } from './checks/bad-input.js'
import { checkCryptoBasics, checkKeySchedule, checkPskSecret, checkSecretTree, checkTranscriptHashes } from './checks/derivation.js'
import { checkMessageProtection } from './checks/message-protection.js'
import { checkPassiveClient } from './checks/passive-client.js'
import { checkTreeKem } from './checks/treekem.js'
import { checkTreeValidation } from './checks/tree-validation.js'
import { checkWelcome } from './checks/welcome.js'
import { yieldToEventLoop } from './checks/keys.js'
import { cryptoVectorFiles, loadVectors, resolveVectorsDir, type CryptoVectorFile } from './vectors.js'

export { cryptoVectorFiles, resolveVectorsDir, type CryptoVectorFile } from './vectors.js'

/** What `cryptoConformanceSuite()` checks: a provider, under a name. */
export interface CryptoConformanceInit {
  /** Name used in test titles and the summary, e.g. `node`. */
  name: string
  /** The provider under test. */
  provider: CryptoProvider
  /** Folder holding the vector files; defaults to `resolveVectorsDir()`. */
  vectorsDir?: string
  /** Suites to test; defaults to every suite the provider supports. */
  ciphersuites?: readonly CiphersuiteName[]
  /**
   * Accept a rejection, not only `false`, from `verify` on a malformed key or
   * signature. Only for ts-mls's default provider, whose WebCrypto Ed25519
   * rejects malformed keys; the `@mls/crypto-*` providers resolve `false`.
   */
  verifyMayReject?: boolean
}

type Check = (vector: never, cs: CiphersuiteImpl) => Promise<void>

const checks: Record<CryptoVectorFile, Check> = {
  'crypto-basics': checkCryptoBasics,
  'secret-tree': checkSecretTree,
  'key-schedule': checkKeySchedule,
  psk_secret: checkPskSecret,
  'transcript-hashes': checkTranscriptHashes,
  'message-protection': checkMessageProtection,
  welcome: checkWelcome,
  treekem: checkTreeKem,
  'tree-validation': checkTreeValidation,
  'passive-client-welcome': checkPassiveClient,
  'passive-client-handling-commit': checkPassiveClient,
  'passive-client-random': checkPassiveClient
}

const slowFiles: ReadonlySet<CryptoVectorFile> = new Set(['treekem', 'passive-client-welcome', 'passive-client-handling-commit', 'passive-client-random'])

interface Count {
  run: number
  passed: number
}

/** Every suite ts-mls defines in RFC 9420's range, for the unsupported-suite check. */
const classicSuites = Object.keys(ciphersuites).filter((name) => ciphersuites[name as CiphersuiteName] <= 7) as CiphersuiteName[]

/**
 * Register the crypto conformance suite (vitest): RFC 9420 test vectors and
 * bad input for every ciphersuite the provider claims, and a clear error for
 * those it does not. Call it at the top level of a test file.
 */
export function cryptoConformanceSuite(init: CryptoConformanceInit): void {
  const { name, provider } = init
  const suites = init.ciphersuites ?? provider.supportedCiphersuites()
  const dir = resolveVectorsDir(init.vectorsDir)
  const tally = new Map<CiphersuiteName, Map<CryptoVectorFile, Count>>()

  describe(`crypto conformance: ${name}`, () => {
    afterAll(() => {
      const lines: string[] = []
      for (const [suite, files] of tally) {
        let run = 0
        let passed = 0
        const parts: string[] = []
        for (const [file, count] of files) {
          run += count.run
          passed += count.passed
          parts.push(`${file} ${count.passed}/${count.run}`)
        }
        lines.push(`[crypto conformance] ${name} ${suite} (${ciphersuites[suite]}): ${passed}/${run} vectors passed (${parts.join(', ')})`)
      }
      console.log(lines.join('\n'))
    })

    it('declares the suites it is tested on', () => {
      expect(suites.length).toBeGreaterThan(0)
      for (const suite of suites) expect(provider.supports(suite), suite).toBe(true)
      expect(provider.specificationVersion).toBe('v1')
    })

    it('rejects a suite it does not support with UNSUPPORTED_CIPHERSUITE naming the suite', async () => {
      const unsupported = [...classicSuites.filter((s) => !provider.supports(s)), 'MLS_256_XWING_AES256GCM_SHA512_Ed25519' as const]
      for (const suite of unsupported) {
        expect(provider.supports(suite)).toBe(false)
        const error = await provider.getCiphersuiteImpl(getCiphersuiteFromName(suite)).then(
          () => undefined,
          (e: unknown) => e as { code?: unknown; message?: unknown }
        )
        expect(error?.code, suite).toBe('UNSUPPORTED_CIPHERSUITE')
        expect(String(error?.message)).toContain(suite)
      }
    })

    describe.each(suites.map((suite) => [suite]))('%s', (suite) => {
      const id = ciphersuites[suite]
      const files = new Map<CryptoVectorFile, Count>()
      tally.set(suite, files)
      let cs: CiphersuiteImpl
      beforeAll(async () => {
        cs = await provider.getCiphersuiteImpl(getCiphersuiteFromName(suite))
      })

      it('handles bad keys, signatures and ciphertexts as ts-mls expects', async () => {
        await checkBadInput(cs, { verifyMayReject: init.verifyMayReject ?? false })
      })

      for (const file of cryptoVectorFiles) {
        const vectors = loadVectors(dir, file).filter((v) => v.cipher_suite === id)
        if (vectors.length === 0) continue
        const count: Count = { run: 0, passed: 0 }
        files.set(file, count)
        const check = checks[file]
        describe(file, () => {
          it.each(vectors.map((vector, index) => [index, vector]))(
            'vector %i',
            async (_index, vector) => {
              count.run++
              await yieldToEventLoop()
              await check(vector as never, cs)
              count.passed++
            },
            slowFiles.has(file) ? 600_000 : undefined
          )
        })
      }
    })
  })
}
