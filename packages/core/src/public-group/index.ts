export * from './public-group.js'
