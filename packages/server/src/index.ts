export { createServices } from './create-services.js'
export type {
  Services,
  ServicesInit,
  AuthService,
  DirectoryService,
  ChannelService,
  PresentedCredentials,
  FetchOptions,
  InstanceBus,
  InstanceNotice,
  AuthenticationHook,
  RegistrationRequest,
  ClaimRequest,
  ExternalJoinPolicy
} from './services.js'
export { defaultServiceLimits, type ServiceLimits } from './limits.js'
export { jwtAuthentication, type JwtAuthenticationInit } from './jwt-authentication.js'
export { SERVER_SENDER } from './services.js'
export { startLogRetention, type LogRetention, type LogRetentionHooks, type LogRetentionPolicy } from './retention.js'
