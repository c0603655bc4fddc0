// Moved to @mls/contracts (so adapters can implement it without installing the engine); re-exported unchanged.
export type {
  AbortOptions,
  ClientId,
  GroupIdHex
} from '@mls/contracts/interfaces'
