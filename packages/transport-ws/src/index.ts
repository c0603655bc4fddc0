export { webSockets } from './client.js'
export type { WebSocketsInit, WebSocketConstructor, WebSocketLike, ReconnectOptions } from './client-options.js'
export {
  PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  CloseCode,
  RequestType,
  ServerFrameType,
  ProtocolError,
  encodeClientFrame,
  decodeClientFrame,
  encodeResponse,
  decodeServerFrame,
  encodeChallenge,
  serverProofContent,
  normalizeServerUrl,
  encodeEntryPush,
  encodeWelcomePush,
  encodeError,
  type Request,
  type Response,
  type ClientFrame,
  type ServerFrame
} from './codec.js'
