export * from './client-store.js'
