export { openPostgresServerStore, type PostgresServerStoreInit } from './server-store.js'
export { POSTGRES_SERVER_STORE_SCHEMA_VERSION } from './schema.js'
export type { PostgresConnectionInit } from './database.js'
export { postgresInstanceBus, type PostgresInstanceBus, type PostgresInstanceBusInit, type InstanceNotice } from './instance-bus.js'
