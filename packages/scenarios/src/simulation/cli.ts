/**
 * `pnpm sim --seeds N --steps M [--from S] [--profile small|large]`: run seeds
 * S..S+N-1; `pnpm sim --seed S --steps M --profile P` replays one. Exits 1 on
 * the first violation, printing its seed and replay command.
 *
 * `--leave`, `--server-removals` and `--power-loss` add opt-in operations (a
 * member's self-Remove proposal; a removal the server proposes as external
 * sender; a crash whose store loses its newest relaxed writes).
 *
 * `--workers W` runs the seeds in W child processes (worker i takes seeds
 * S+i, S+i+W, ...); `--keep-going` reports a violation and goes on with the
 * next seed (the exit code is still 1). Every seed prints one line: `seed N
 * (profile) clean: {stats}` or `seed N (profile) VIOLATION: ...`.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { runSimulation, SimulationViolation } from './simulator.js'

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? undefined : process.argv[i + 1]
}

function count(name: string, fallback: number, min: number): number {
  const raw = option(name)
  const value = raw === undefined ? fallback : Number(raw)
  if (!Number.isSafeInteger(value) || value < min) {
    console.error(`--${name} must be an integer of at least ${min}`)
    process.exit(2)
  }
  return value
}

if (process.argv.includes('--help')) {
  console.log(`pnpm sim [--seeds N] [--from S] [--steps M] [--profile small|large] [--workers W] [--keep-going] [--leave] [--server-removals] [--power-loss] [--trace]
pnpm sim --seed S --steps M [--profile P] [--trace]    replay one seed
  --seeds N       how many seeds (default 100), from --from S (default 1)
  --steps M       random operations per seed (default 200)
  --profile P     force the profile (default: every fourth seed is large)
  --workers W     run in W child processes (default 1)
  --keep-going    report a violation and continue with the next seed
  --leave         also draw self-Remove proposals (members leaving)
  --server-removals  also draw removals the server proposes as the groups' external sender
  --power-loss    also draw power losses (a crash that undoes a client's newest relaxed writes)
  --trace         print each seed's whole trace`)
  process.exit(0)
}

const single = option('seed')
const from = single === undefined ? count('from', 1, 0) : count('seed', 1, 0)
const seeds = single === undefined ? count('seeds', 100, 1) : 1
const steps = count('steps', 200, 1)
const workers = single === undefined ? count('workers', 1, 1) : 1
const stride = count('stride', 1, 1)
const profileOption = option('profile')
const profile = profileOption === 'small' || profileOption === 'large' ? profileOption : undefined
const verbose = process.argv.includes('--trace')
const keepGoing = process.argv.includes('--keep-going')
const leave = process.argv.includes('--leave')
const serverRemovals = process.argv.includes('--server-removals')
const powerLoss = process.argv.includes('--power-loss')
const started = Date.now()

if (workers > 1) {
  // Worker i runs seeds from+i, from+i+workers, ... (below from+seeds); each prints its own lines.
  const replaced = new Set(['--workers', '--from', '--seeds', '--stride'])
  const passOn: string[] = []
  const args = process.argv.slice(2)
  for (let i = 0; i < args.length; i++) {
    if (replaced.has(args[i]!)) i++
    else passOn.push(args[i]!)
  }
  const codes = await Promise.all(
    Array.from({ length: Math.min(workers, seeds) }, (_, i) => {
      const own = Math.ceil((seeds - i) / workers)
      const child = fork(fileURLToPath(import.meta.url), [...passOn, '--from', String(from + i), '--seeds', String(own), '--stride', String(workers)], { stdio: 'inherit' })
      return new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)))
    })
  )
  console.log(`${workers} workers done in ${((Date.now() - started) / 1000).toFixed(1)} s (seeds ${from}..${from + seeds - 1}); exit codes ${codes.join(',')}`)
  process.exit(codes.every((code) => code === 0) ? 0 : 1)
}

let clean = 0
let violations = 0
let last = from
for (let n = 0; n < seeds; n++) {
  const seed = from + n * stride
  last = seed
  try {
    const result = await runSimulation({ seed, steps, leave, serverRemovals, powerLoss, ...(profile === undefined ? {} : { profile }) })
    clean++
    if (verbose) console.log(result.trace.join('\n'))
    console.log(`seed ${seed} (${result.profile}) clean: ${JSON.stringify(result.stats)} trace ${result.traceDigest.slice(0, 12)}`)
  } catch (error) {
    if (!(error instanceof SimulationViolation)) throw error
    violations++
    if (verbose) console.error(error.trace.join('\n'))
    console.log(`seed ${seed} (${error.profile}) VIOLATION: ${error.violation}`)
    console.error(error.message)
    if (!keepGoing) {
      console.error(`${clean} seed(s) x ${steps} steps ran clean before seed ${seed}`)
      process.exit(1)
    }
  }
}
console.log(
  `${clean} seed(s) x ${steps} steps clean, ${violations} violation(s), in ${((Date.now() - started) / 1000).toFixed(1)} s (seeds ${from}..${last}${stride > 1 ? ` step ${stride}` : ''})`
)
process.exit(violations === 0 ? 0 : 1)
