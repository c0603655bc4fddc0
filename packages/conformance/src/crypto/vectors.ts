import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'

/** The RFC 9420 test-vector files that exercise a crypto provider, in the order the suite runs them. */
export const cryptoVectorFiles = [
  'crypto-basics',
  'secret-tree',
  'key-schedule',
  'psk_secret',
  'transcript-hashes',
  'message-protection',
  'welcome',
  'treekem',
  'tree-validation',
  'passive-client-welcome',
  'passive-client-handling-commit',
  'passive-client-random'
] as const

/** The name of one RFC 9420 test-vector file the crypto suite runs. */
export type CryptoVectorFile = (typeof cryptoVectorFiles)[number]

/** Every vector object carries its ciphersuite id. */
export interface Vector {
  cipher_suite: number
}

function findRepositoryRoot(start: string): string | undefined {
  let dir = resolve(start)
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/**
 * Where the vectors are: `explicit` if given, else `$MLS_TEST_VECTORS`, else
 * `../shared/test-vectors` next to the repository root (found by walking up
 * from the working directory to `pnpm-workspace.yaml`). Throws if the folder
 * has no `crypto-basics.json`, so a missing checkout fails loudly instead of
 * running nothing.
 */
export function resolveVectorsDir(explicit?: string): string {
  const fromEnv = process.env.MLS_TEST_VECTORS
  let dir: string | undefined = explicit ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined)
  if (dir === undefined) {
    const root = findRepositoryRoot(process.cwd())
    if (root !== undefined) dir = join(root, '..', 'shared', 'test-vectors')
  }
  if (dir === undefined || !existsSync(join(dir, 'crypto-basics.json'))) {
    throw new Error(
      `RFC 9420 test vectors not found (looked in ${dir ?? '<no repository root>'}); set MLS_TEST_VECTORS to the folder holding crypto-basics.json`
    )
  }
  return resolve(dir)
}

const loaded = new Map<string, Vector[]>()

/** Parse one vector file (cached per process). */
export function loadVectors(dir: string, file: CryptoVectorFile): Vector[] {
  const path = join(dir, `${file}.json`)
  let vectors = loaded.get(path)
  if (vectors === undefined) {
    vectors = JSON.parse(readFileSync(path, 'utf8')) as Vector[]
    loaded.set(path, vectors)
  }
  return vectors
}
