#!/usr/bin/env node
import { MlsToolkitError } from '@mls/core'
import { parseConfig } from './config.js'
import { jsonLogger } from './logger.js'
import { startServer } from './server.js'

let config
try {
  config = parseConfig(process.argv.slice(2))
} catch (error) {
  const help = MlsToolkitError.isInstance(error) && error.details?.help === true
  ;(help ? process.stdout : process.stderr).write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(help ? 0 : 2)
}
const logger = jsonLogger(config.logLevel)
const server = await startServer(config, logger)
let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    logger.info('signal:received', { signal })
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('server:stop-failed', { error })
        process.exit(1)
      }
    )
  })
}
