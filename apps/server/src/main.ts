#!/usr/bin/env node
import { MlsToolkitError } from '@mls/core'
import { parseConfig } from './config.js'
import { jsonLogger } from './logger.js'
import { startMemorySampler } from './memory-sampler.js'
import { startServer } from './server.js'
import { ExitCode, StartupError } from './startup.js'

/** One clear line on stderr and one JSON log line on stdout, then exit with the documented code. */
function failStartup(error: StartupError): never {
  process.stderr.write(`mls-server: cannot start: ${error.message}\n`)
  jsonLogger('error').error('server:start-failed', { reason: error.reason, exitCode: error.exitCode, message: error.message, cause: error.cause })
  process.exit(error.exitCode)
}

let config
try {
  config = parseConfig(process.argv.slice(2))
} catch (error) {
  if (MlsToolkitError.isInstance(error) && error.details?.help === true) {
    process.stdout.write(`${error.message}\n`)
    process.exit(ExitCode.OK)
  }
  failStartup(new StartupError('usage', error instanceof Error ? error.message : String(error), { cause: error }))
}
const logger = jsonLogger(config.logLevel)
const starting = startServer(config, logger)
// Signals are handled from the start: one arriving while the server starts stops it once it has started.
let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    logger.info('signal:received', { signal })
    starting
      .then((server) => server.close())
      .then(
        () => process.exit(ExitCode.OK),
        (error: unknown) => {
          if (error instanceof StartupError) return // reported below
          logger.error('server:stop-failed', { error })
          process.exit(ExitCode.FAILURE)
        }
      )
  })
}
try {
  await starting
  // Diagnostic for soak runs: memory:sample lines (after a full GC when node runs with --expose-gc).
  const sampleMs = Number(process.env.MLS_MEMORY_SAMPLE_MS ?? 0)
  if (Number.isFinite(sampleMs) && sampleMs > 0) startMemorySampler(sampleMs, logger)
} catch (error) {
  if (error instanceof StartupError) failStartup(error)
  throw error
}
