export * from './errors.js'
export * from './interfaces/index.js'
export * from './bytes.js'
export * from './identity.js'
export * from './device-list.js'
export { ContactBook, type ContactChange } from './contacts.js'
export type { SkippedDevice, SkipReason } from './key-package-check.js'
export type { VouchedDevice, KeyPackageRefusal } from './vouched.js'
export * from './session-auth.js'
export * from './crypto.js'
export * from './client.js'
export * from './group.js'
export * from './recovery/external-rejoin.js'
export { Emitter } from './emitter.js'
export { Mutex } from './mutex.js'
export { wireCredentials } from './wire-credentials.js'
export { acceptAllWelcomes, welcomesFrom, type Invitation, type WelcomeDecision, type WelcomePolicy } from './welcome-policy.js'
export type { PacingOptions } from './pacing.js'
export {
  DEFAULT_SERVER_IDENTITY,
  checkExternalSender,
  externalSendersChange,
  externalSendersOf,
  sameExternalSender,
  serverExternalSender,
  serverExternalSendersExtension
} from './server-sender.js'
