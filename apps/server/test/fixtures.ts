import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createMlsClient, type MlsClient } from '@mls/core'
import type { ClientStore } from '@mls/core/interfaces'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { startServerProcess } from './harness.js'

/** Undo steps a test registers; run them newest first in `afterEach`. */
export type Cleanups = (() => Promise<void> | void)[]

/** Start a real `apps/server` process on a fresh data dir; it is killed and the dir removed by `cleanups`. */
export async function serverUrl(prefix: string, cleanups: Cleanups): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const proc = await startServerProcess(dir)
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  return proc.url
}

/** An `MlsClient` (`<userId>/laptop`, node crypto) over WebSocket to `url`, closed by `cleanups`. */
export async function webSocketClient(
  userId: string,
  url: string,
  cleanups: Cleanups,
  store: ClientStore = memoryClientStore({ name: userId })
): Promise<MlsClient> {
  const client = await createMlsClient({
    userId,
    deviceId: 'laptop',
    crypto: nodeCrypto(),
    store,
    transport: webSockets({ url, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } })
  })
  cleanups.push(() => client.close())
  return client
}
