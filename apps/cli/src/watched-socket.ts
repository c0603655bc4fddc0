import type { WebSocketConstructor } from '@mls/transport-ws'
import WebSocket from 'ws'

/**
 * The `ws` WebSocket, reporting each socket's open and close. The transport
 * reconnects on its own and the client only hears of it as a caught-up
 * channel, so the chat watches its sockets to tell the user when the
 * connection drops and when it is back.
 */
export function watchedWebSocket(onChange: (event: 'open' | 'close') => void): WebSocketConstructor {
  class WatchedWebSocket extends WebSocket {
    constructor(url: string) {
      super(url)
      this.addEventListener('open', () => onChange('open'))
      this.addEventListener('close', () => onChange('close'))
    }
  }
  return WatchedWebSocket as unknown as WebSocketConstructor
}
