export { createServices } from './create-services.js'
export type {
  Services,
  ServicesInit,
  AuthService,
  DirectoryService,
  ChannelService,
  PresentedCredentials,
  FetchOptions,
  ExternalJoinPolicy
} from './services.js'
export { defaultServiceLimits, type ServiceLimits } from './limits.js'
export { SERVER_SENDER } from './services.js'
