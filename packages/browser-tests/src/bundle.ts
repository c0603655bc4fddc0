import { builtinModules } from 'node:module'
import { fileURLToPath } from 'node:url'
import { build, type Plugin } from 'esbuild'

/**
 * Node built-ins that may appear in the bundle's inputs because they sit on a
 * path that never runs in a browser, each stubbed with an empty module.
 * Anything else that imports a Node built-in fails the bundle.
 */
export const DEAD_NODE_IMPORTS: readonly { readonly module: string; readonly importer: RegExp; readonly why: string }[] = [
  {
    module: 'crypto',
    importer: /[\\/]libsodium-sumo[\\/]/,
    why:
      "libsodium-sumo's Emscripten glue seeds its RNG from `window.crypto`/`self.crypto` (getRandomValues) and only falls back to `require('crypto')` inside a try/catch when neither exists (Node without WebCrypto); its package.json `browser` field maps `crypto` to false for the same reason"
  },
  {
    module: 'crypto',
    importer: /[\\/]@hpke[\\/]common[\\/]/,
    why:
      "@hpke/common (under ts-mls's default provider and @hpke/core) takes `globalThis.crypto` and only when it is undefined (Node 18 and older) tries `await import('crypto')` in a try/catch; with the empty stub that fallback fails as 'not supported' instead of breaking the bundle"
  }
]

export interface BrowserBundle {
  /** The ES module to serve to the page. */
  readonly code: string
  /** Paths of every input file, relative to the working directory. */
  readonly inputs: readonly string[]
  /** Node built-ins that were stubbed, with their importers. */
  readonly stubbed: readonly { readonly module: string; readonly importer: string }[]
}

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

/** Refuses every Node built-in except the dead paths listed in `DEAD_NODE_IMPORTS`, which become empty modules. */
function nodeBuiltinsGuard(stubbed: { module: string; importer: string }[]): Plugin {
  const filter = new RegExp(`^(${[...builtins].map(escape).join('|')})(/.*)?$`)
  return {
    name: 'node-builtins-guard',
    setup(b) {
      b.onResolve({ filter }, (args) => {
        const module = args.path.replace(/^node:/, '')
        const dead = DEAD_NODE_IMPORTS.find((d) => d.module === module && d.importer.test(args.importer))
        if (dead !== undefined) {
          stubbed.push({ module: args.path, importer: args.importer })
          return { path: args.path, namespace: 'dead-node-builtin' }
        }
        return {
          errors: [
            {
              text: `Node built-in "${args.path}" imported by ${args.importer} cannot run in a browser. If it is only on a Node path, add it to DEAD_NODE_IMPORTS in packages/browser-tests/src/bundle.ts with the reason.`
            }
          ]
        }
      })
      b.onLoad({ filter: /.*/, namespace: 'dead-node-builtin' }, () => ({ contents: 'module.exports = {}', loader: 'js' }))
    }
  }
}

/**
 * Bundle `browser-entry.ts` and everything it imports (workspace packages from
 * their TypeScript sources through the `source` export condition) into one ES
 * module for the browser. Fails on any Node built-in that is not a known dead
 * path, and on any warning about one.
 */
export async function bundleBrowserEntry(entry: string = fileURLToPath(new URL('../src/browser-entry.ts', import.meta.url))): Promise<BrowserBundle> {
  const stubbed: { module: string; importer: string }[] = []
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    conditions: ['source', 'module'],
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
    plugins: [nodeBuiltinsGuard(stubbed)]
  })
  const output = result.outputFiles[0]
  if (output === undefined) throw new Error('esbuild produced no output')
  const inputs = Object.keys(result.metafile.inputs)
  const leaked = inputs.filter((i) => builtins.has(i) || i.startsWith('node:'))
  if (leaked.length > 0) throw new Error(`Node built-ins in the browser bundle: ${leaked.join(', ')}`)
  return { code: output.text, inputs, stubbed }
}
