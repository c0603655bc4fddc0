export * from './server-store.js'
export * from './client-store.js'
