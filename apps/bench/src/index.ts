/**
 * Runs the benchmarks in turn: `pnpm bench` runs them all, `pnpm bench NAME…`
 * (or `node dist/index.js NAME…` here) only those named. Each benchmark is a
 * file under src/ exporting `run(): Promise<void>`; add it to the list below.
 */
export interface Benchmark {
  name: string
  description: string
  load(): Promise<{ run(): Promise<void> }>
}

const benchmarks: Benchmark[] = [
  {
    name: 'crypto',
    description: 'crypto providers against ts-mls default: KeyPackage, join, commit, process, send, receive at 10/100/1000 members',
    load: () => import('./crypto.js')
  },
  {
    name: 'engine',
    description: 'the MLS engine against OpenMLS (core-crypto WASM) and a floor of primitive costs: commit, process, add, join at 10/100/1000 members (10,000 with --large)',
    load: () => import('./engine.js')
  },
  {
    name: 'api',
    description: 'through the public API (createMlsClient, nodeCrypto, SQLite client store, in-process services): send, receive, update, process, add, join at 10/100/1000 members (10,000 with --large)',
    load: () => import('./api.js')
  }
]

const wanted = process.argv.slice(2).filter((arg) => !arg.startsWith('--'))
const unknown = wanted.filter((name) => !benchmarks.some((b) => b.name === name))
if (unknown.length > 0) {
  console.error(`Unknown benchmark(s): ${unknown.join(', ')}. Known: ${benchmarks.map((b) => b.name).join(', ')}`)
  process.exit(2)
}
for (const benchmark of benchmarks) {
  if (wanted.length > 0 && !wanted.includes(benchmark.name)) continue
  console.log(`\n=== ${benchmark.name}: ${benchmark.description}\n`)
  const started = performance.now()
  await (await benchmark.load()).run()
  console.log(`\n${benchmark.name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}
