// Moved to @mls/contracts (so adapters can implement it without installing the engine); re-exported unchanged.
export type {
  ChannelEntry,
  WelcomeEntry,
  PostCommitResult,
  ChannelEvent,
  GroupChannelClient
} from '@mls/contracts/interfaces'
