// Moved to @mls/contracts (so adapters can implement it without installing the engine); re-exported unchanged.
export { CLIENT_STORE_SPECIFICATION_VERSION, writeDurability } from '@mls/contracts/interfaces'
export type {
  StoreKey,
  StoreOperation,
  StoreEntry,
  StoreDurability,
  StoreWriteOptions,
  ClientStore
} from '@mls/contracts/interfaces'
