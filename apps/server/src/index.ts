export { parseConfig, USAGE, type ServerConfig, type LogLevel } from './config.js'
export { startServer, type RunningServer } from './server.js'
export { jsonLogger, type Logger } from './logger.js'
