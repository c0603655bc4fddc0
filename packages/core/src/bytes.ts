// Moved to @mls/contracts; re-exported unchanged.
export * from '@mls/contracts/bytes'
