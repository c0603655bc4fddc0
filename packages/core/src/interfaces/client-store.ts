// Moved to @mls/contracts (so adapters can implement it without installing the engine); re-exported unchanged.
export { CLIENT_STORE_SPECIFICATION_VERSION } from '@mls/contracts/interfaces'
export type {
  StoreKey,
  StoreOperation,
  StoreEntry,
  ClientStore
} from '@mls/contracts/interfaces'
