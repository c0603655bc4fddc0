/**
 * `pnpm sim --seeds N --steps M [--from S] [--profile small|large]`: run seeds
 * S..S+N-1; `pnpm sim --seed S --steps M --profile P` replays one. Exits 1 on
 * the first violation, printing its seed and replay command.
 */
import { runSimulation, SimulationViolation } from './simulator.js'

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? undefined : process.argv[i + 1]
}

const single = option('seed')
const from = Number(single ?? option('from') ?? 1)
const seeds = single === undefined ? Number(option('seeds') ?? 100) : 1
const steps = Number(option('steps') ?? 200)
const profileOption = option('profile')
const profile = profileOption === 'small' || profileOption === 'large' ? profileOption : undefined
const verbose = process.argv.includes('--trace')

const started = Date.now()
let clean = 0
for (let seed = from; seed < from + seeds; seed++) {
  try {
    const result = await runSimulation({ seed, steps, ...(profile === undefined ? {} : { profile }) })
    clean++
    if (verbose) console.log(result.trace.join('\n'))
    console.log(`seed ${seed} (${result.profile}) clean: ${JSON.stringify(result.stats)} trace ${result.traceDigest.slice(0, 12)}`)
  } catch (error) {
    if (error instanceof SimulationViolation) {
      if (verbose) console.error(error.trace.join('\n'))
      console.error(error.message)
      console.error(`${clean} seed(s) x ${steps} steps ran clean before seed ${seed}`)
      process.exit(1)
    }
    throw error
  }
}
console.log(`${clean} seed(s) x ${steps} steps clean in ${((Date.now() - started) / 1000).toFixed(1)} s (seeds ${from}..${from + seeds - 1})`)
