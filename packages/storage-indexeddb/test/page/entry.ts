/**
 * Runs in a Chromium page (bundled by `../chromium.ts`, with `vitest` mapped to
 * `vitest-in-page.ts`). `?run=conformance` runs `@mls/conformance/storage`'s
 * client suite against IndexedDB and publishes the results as
 * `window.__conformance`. Every page also exposes `window.__idb`, small
 * helpers the Node side drives through `page.evaluate` (reload, concurrent
 * tabs, erasure measurement).
 */
import type { ClientStore } from '@mls/core/interfaces'
import { clientStoreConformanceSuite } from '@mls/conformance/storage'
import { deleteIndexedDbClientStore, openIndexedDbClientStore } from '../../src/index.js'
import { runCollected, type TestResult } from './vitest-in-page.js'

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
const unhex = (text: string): Uint8Array => Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16))

const open = new Map<string, ClientStore>()

async function store(name: string): Promise<ClientStore> {
  let s = open.get(name)
  if (s === undefined) {
    s = await openIndexedDbClientStore({ name })
    open.set(name, s)
  }
  return s
}

/** Helpers for the Node side; values cross `page.evaluate` as hex. */
const helpers = {
  async put(name: string, entries: Record<string, string>): Promise<void> {
    await (await store(name)).write(Object.entries(entries).map(([key, value]) => ({ type: 'put' as const, key, value: unhex(value) })))
  },
  async remove(name: string, keys: string[]): Promise<void> {
    await (await store(name)).write(keys.map((key) => ({ type: 'delete' as const, key })))
  },
  async get(name: string, key: string): Promise<string | null> {
    const value = await (await store(name)).get(key)
    return value === undefined ? null : hex(value)
  },
  async list(name: string, prefix: string): Promise<[string, string][]> {
    return (await (await store(name)).list(prefix)).map((e) => [e.key, hex(e.value)])
  },
  async close(name: string): Promise<void> {
    await open.get(name)?.close()
    open.delete(name)
  },
  /** Write `rounds` batches of `count` random values of `size` bytes and delete each batch again (to push the engine into compacting). */
  async churn(name: string, rounds: number, count: number, size: number): Promise<void> {
    const s = await store(name)
    for (let round = 0; round < rounds; round++) {
      const keys = Array.from({ length: count }, (_, i) => `churn/${round}/${i}`)
      await s.write(keys.map((key) => ({ type: 'put' as const, key, value: crypto.getRandomValues(new Uint8Array(size)) })))
      await s.write(keys.map((key) => ({ type: 'delete' as const, key })))
    }
  },
  /** Start a write without waiting for it (the Node side then kills the page). */
  startWrite(name: string, prefix: string, count: number, fill: number): void {
    void store(name).then((s) =>
      s.write(Array.from({ length: count }, (_, i) => ({ type: 'put' as const, key: `${prefix}${String(i).padStart(5, '0')}`, value: new Uint8Array(256).fill(fill) })))
    )
  },
  /**
   * `rounds` atomic writes of the pair `pair/a`, `pair/b` (both `tab:round`),
   * each followed by a read of both in one `list`. Returns the reads where
   * the two differed (a torn write) and how many reads saw the other tab's value.
   */
  async pairs(name: string, tab: string, rounds: number): Promise<{ torn: string[]; sawOther: number; writes: number }> {
    const s = await store(name)
    const torn: string[] = []
    let sawOther = 0
    for (let round = 0; round < rounds; round++) {
      const value = new TextEncoder().encode(`${tab}:${round}`)
      await s.write([
        { type: 'put', key: 'pair/a', value },
        { type: 'put', key: 'pair/b', value }
      ])
      const read = await s.list('pair/')
      const [a, b] = read.map((e) => new TextDecoder().decode(e.value))
      if (read.length !== 2 || a !== b) torn.push(`${a}|${b}`)
      if (a !== undefined && !a.startsWith(`${tab}:`)) sawOther++
    }
    return { torn, sawOther, writes: rounds }
  }
}

declare global {
  interface Window {
    __idb?: typeof helpers
    __conformance?: { results: TestResult[]; userAgent: string; durationMs: number }
  }
}

window.__idb = helpers

function log(line: string): void {
  console.log(`[storage-indexeddb] ${line}`)
}

async function runConformance(): Promise<void> {
  const began = performance.now()
  let counter = 0
  const names = new WeakMap<ClientStore, string>()
  const track = async (name: string): Promise<ClientStore> => {
    const s = await openIndexedDbClientStore({ name })
    names.set(s, name)
    return s
  }
  const nameOf = (s: ClientStore): string => {
    const name = names.get(s)
    if (name === undefined) throw new Error('unknown store')
    return name
  }
  clientStoreConformanceSuite<ClientStore>({
    name: 'IndexedDB in Chromium',
    setup: () => track(`conformance-${Date.now()}-${++counter}`),
    teardown: async (s) => {
      await s.close()
      await deleteIndexedDbClientStore(nameOf(s))
    },
    // A new connection to the same database, as after a page reload.
    reopen: async (s) => {
      await s.close()
      return track(nameOf(s))
    }
  })
  const results = await runCollected(log)
  window.__conformance = { results, userAgent: navigator.userAgent, durationMs: Math.round(performance.now() - began) }
}

if (new URLSearchParams(location.search).get('run') === 'conformance') {
  runConformance().catch((error: unknown) => {
    log(`conformance run failed: ${String(error)}`)
    window.__conformance = { results: [{ name: 'the run itself', ok: false, error: String(error), assertions: 0, ms: 0 }], userAgent: navigator.userAgent, durationMs: 0 }
  })
}
