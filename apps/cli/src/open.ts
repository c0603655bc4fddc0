import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createMlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { sqliteClientStore } from '@mls/storage-sqlite'
import { webSockets } from '@mls/transport-ws'
import { ChatSession, type Output } from './chat.js'
import { History } from './history.js'
import { watchedWebSocket } from './watched-socket.js'
import type { ChatOptions } from './options.js'

export interface OpenChat {
  readonly session: ChatSession
  close(): Promise<void>
}

/**
 * Open this device's client store (creating the identity on first use),
 * connect to the server, catch up, and make sure the Directory holds
 * KeyPackages so that others can invite this device.
 */
export async function openChat(options: ChatOptions, print: Output): Promise<OpenChat> {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 })
  const name = `${encodeURIComponent(options.user)}@${encodeURIComponent(options.device)}`
  const folder = join(options.dataDir, name)
  mkdirSync(folder, { recursive: true, mode: 0o700 })
  const store = sqliteClientStore({ path: join(folder, 'client.sqlite') })
  // Tell the user when the connection drops and when the transport has it back.
  let opened = false
  let lost = false
  let closing = false
  const WebSocket = watchedWebSocket((event) => {
    if (closing) return
    if (event === 'close' && opened && !lost) {
      lost = true
      print(`* connection lost; reconnecting to ${options.server}...`, 'error')
    } else if (event === 'open') {
      if (lost) print('* reconnected; catching up', 'notice')
      opened = true
      lost = false
    }
  })
  const client = await createMlsClient({
    userId: options.user,
    deviceId: options.device,
    crypto: nodeCrypto(),
    store,
    transport: webSockets({ url: options.server, WebSocket }),
    keyPackages: { replenishBelow: 3 },
    start: false
  })
  const session = new ChatSession(client, new History(folder), print)
  try {
    await client.start()
    const count = await client.directory.countKeyPackages()
    if (count.oneTime < 3 || !count.lastResort) await client.publishKeyPackages()
  } catch (error) {
    session.close()
    await client.close()
    throw error
  }
  return {
    session,
    close: async () => {
      closing = true
      session.close()
      await client.close()
    }
  }
}
