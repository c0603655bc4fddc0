// Moved to @mls/contracts (so adapters can implement it without installing the engine); re-exported unchanged.
export type {
  FetchedKeyPackage,
  RegisteredIdentity,
  KeyPackageCount,
  DirectoryClient
} from '@mls/contracts/interfaces'
