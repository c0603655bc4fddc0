// Two processes chatting through a server started with `pnpm start` (or any
// server speaking the toolkit's WebSocket protocol).
//
//   node dist/chat/chat.js bob          # waits to be added, answers, exits
//   node dist/chat/chat.js alice bob    # adds bob, says hello, waits for the answer, exits
//
// MLS_URL picks the server (default ws://127.0.0.1:8080/); each user keeps its
// identity in `<user>.sqlite` in the current folder (MLS_CHAT_DIR to change it).
import { join } from 'node:path'
import WebSocket from 'ws'
import { MlsToolkitError, createMlsClient, type Group, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { sqliteClientStore } from '@mls/storage-sqlite'
import { webSockets } from '@mls/transport-ws'

const [me, peer] = process.argv.slice(2)
if (me === undefined) {
  console.error('usage: chat.js <me> [peer]   (with a peer: start a group with it)')
  process.exit(2)
}
const url = process.env.MLS_URL ?? 'ws://127.0.0.1:8080/'
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

const client: MlsClient = await createMlsClient({
  userId: me,
  deviceId: 'laptop',
  crypto: nodeCrypto(),
  store: sqliteClientStore({ path: join(process.env.MLS_CHAT_DIR ?? '.', `${me}.sqlite`) }),
  transport: webSockets({ url, WebSocket })
})
await client.publishKeyPackages() // KeyPackages to the Directory: others can now add this user
console.log(`${me}: ready`)

/** Resolve with the first message from someone else in `group`. */
const nextMessage = (group: Group): Promise<string> =>
  new Promise((resolve) => {
    const off = group.on('message:received', (m) => {
      if (m.own) return
      off()
      resolve(`${m.sender}: ${text(m.plaintext)}`)
    })
  })

/** Add `userId`, waiting until it has published KeyPackages (UNKNOWN_USER / NO_KEY_PACKAGE until then). */
async function addWhenKnown(group: Group, userId: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      await client.addUsers(group, [userId]) // Commit to the channel, Welcome to the user
      return
    } catch (error) {
      const waiting = MlsToolkitError.isInstance(error) && (error.code === 'UNKNOWN_USER' || error.code === 'NO_KEY_PACKAGE')
      if (!waiting || Date.now() + delay > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, delay))
    }
  }
}

try {
  if (peer !== undefined) {
    const group = await client.createGroup()
    await addWhenKnown(group, peer)
    const answer = nextMessage(group)
    await group.send(`hello ${peer}`)
    console.log(`${me} <- ${await answer}`)
  } else {
    const { group } = await client.once('group:joined') // a Welcome arrived
    console.log(`${me}: joined a group at epoch ${group.epoch}`)
    const greeting = await nextMessage(group)
    console.log(`${me} <- ${greeting}`)
    await group.send(`hi, this is ${me}`)
  }
} finally {
  await client.close() // closes the connection and the store: the process exits
}
