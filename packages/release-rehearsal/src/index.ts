export * from './processes.js'
export * from './registry.js'
export * from './static-server.js'
