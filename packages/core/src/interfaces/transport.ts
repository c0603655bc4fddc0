// Moved to @mls/contracts (so adapters can implement it without installing the engine); re-exported unchanged.
export { TRANSPORT_SPECIFICATION_VERSION } from '@mls/contracts/interfaces'
export type {
  ServerBinding,
  ServerExternalSender,
  SessionCredentials,
  Connection,
  Transport
} from '@mls/contracts/interfaces'
