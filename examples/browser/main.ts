// A browser client: two users in one page talk through a server (for example
// `pnpm start`), with pure-JavaScript crypto and in-memory stores.
// Bundle it (npm run build: esbuild browser/main.ts --bundle ...) and open
// browser/index.html?server=ws://127.0.0.1:8080/ from any static file server.
import { createMlsClient } from '@mls/core'
import { nobleCrypto } from '@mls/crypto-noble'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws' // the client entry: uses the browser's WebSocket, never imports `ws`

const server = new URLSearchParams(location.search).get('server') ?? 'ws://127.0.0.1:8080/'
const output = document.getElementById('output')
const show = (line: string): void => {
  if (output !== null) output.textContent += `${line}\n`
}

async function main(): Promise<string> {
  const client = (userId: string) =>
    createMlsClient({
      userId,
      deviceId: 'browser',
      crypto: nobleCrypto(),
      store: memoryClientStore(),
      transport: webSockets({ url: server }) // global WebSocket
    })
  const alice = await client(`alice-${crypto.randomUUID()}`)
  const bob = await client(`bob-${crypto.randomUUID()}`)
  await bob.publishKeyPackages()
  const group = await alice.createGroup()
  const joined = bob.once('group:joined')
  await alice.addUsers(group, [bob.userId])
  const bobsGroup = (await joined).group
  show(`${bob.userId} joined at epoch ${bobsGroup.epoch}`)
  const received = new Promise<string>((resolve) =>
    bobsGroup.on('message:received', (m) => resolve(new TextDecoder().decode(m.plaintext)))
  )
  await group.send('hello from the browser')
  const message = await received
  show(`bob <- ${message}`)
  await alice.close()
  await bob.close()
  return message
}

main().then(
  (message) => {
    document.title = `ok: ${message}`
  },
  (error: unknown) => {
    show(String(error))
    document.title = `error: ${error instanceof Error ? error.message : String(error)}`
  }
)
