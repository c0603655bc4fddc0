// Moved to @mls/contracts (so adapters can implement it without installing the engine); re-exported unchanged.
export { SERVER_STORE_SPECIFICATION_VERSION } from '@mls/contracts/interfaces'
export type {
  IdentityRecord,
  KeyPackageRecord,
  RosterEntry,
  AccessWindow,
  GroupRecord,
  LogRecord,
  WelcomeRecord,
  PublicStateRecord,
  NewGroupRecord,
  AppendCommitResult,
  AppendProposalResult,
  AppendMessageResult,
  LogPruning,
  WelcomePruning,
  FetchCursor,
  ServerStore
} from '@mls/contracts/interfaces'
