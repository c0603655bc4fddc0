import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHAT_MAIN, ensureTmux, freePort, killTmuxServer, startServer, Terminal } from './terminal.js'

// Three mls-chat processes in real terminals (tmux) against a real apps/server
// process: what is typed goes in with send-keys, what is asserted is read off
// the screen with capture-pane.
describe('mls-chat in real terminals against apps/server', () => {
  const root = mkdtempSync(join(tmpdir(), 'mls-chat-e2e-'))
  const socket = `mls-chat-test-${process.pid}`
  let port: number
  let server: Awaited<ReturnType<typeof startServer>>
  let url: string
  const chat = (name: string, user: string, device: string): Terminal =>
    Terminal.open(socket, name, [process.execPath, CHAT_MAIN, '--server', url, '--user', user, '--device', device, '--data-dir', join(root, user)])

  beforeAll(async () => {
    ensureTmux()
    port = await freePort()
    url = `ws://127.0.0.1:${port}`
    server = await startServer(join(root, 'server'), port)
  })
  afterAll(async () => {
    killTmuxServer(socket)
    await server?.stop()
    rmSync(root, { recursive: true, force: true })
  })

  it('creates, invites, chats while typing, updates, removes, survives a server restart and its own restart', async () => {
    let alice = chat('alice', 'alice', 'laptop')
    const bob = chat('bob', 'bob', 'phone')
    const carol = chat('carol', 'carol', 'desk')
    await Promise.all([alice, bob, carol].map((t) => t.waitFor('ready.')))

    alice.line('/create')
    const groupId = (await alice.waitFor(/created group ([0-9a-f]{8}) \(([0-9a-f]{32})\)/))[2]!
    // Stranger's input: unknown users, groups and commands get a clear error and change nothing.
    alice.line('/invite nobody-here')
    await alice.waitFor(/! .*nobody-here.*\(\w+\)/)
    alice.line('/switch ffff')
    await alice.waitFor('! no group ffff')
    alice.line('/frobnicate')
    await alice.waitFor('! unknown command /frobnicate')
    alice.line('/epoch')
    await alice.waitFor(/epoch 0, epoch authenticator [0-9a-f]{64}/)
    alice.line('/invite bob carol')
    await alice.waitFor(/invited (bob\/phone, carol\/desk|carol\/desk, bob\/phone) \(epoch 1\)/)
    await bob.waitFor(`joined group ${groupId.slice(0, 8)} from a Welcome (epoch 1, 3 members)`)
    await carol.waitFor(`joined group ${groupId.slice(0, 8)} from a Welcome (epoch 1, 3 members)`)

    // A message arrives while bob is typing: it appears, and his unfinished line stays.
    bob.type('half a li')
    await bob.waitFor(/> half a li$/m)
    alice.line('hello from alice')
    await bob.waitFor('<alice/laptop> hello from alice')
    await carol.waitFor('<alice/laptop> hello from alice')
    expect(bob.cursorLine()).toMatch(/^bob\/phone [0-9a-f]{8}@1> half a li\s*$/)
    bob.line('ne')
    await alice.waitFor('<bob/phone> half a line')

    // Everyone agrees on the epoch authenticator.
    const authenticator = async (t: Terminal, epoch: number): Promise<string> => {
      t.line('/epoch')
      return (await t.waitFor(new RegExp(`epoch ${epoch}, epoch authenticator ([0-9a-f]{64})`)))[0]
    }
    const atEpoch1 = await authenticator(alice, 1)
    expect(atEpoch1).toMatch(/^epoch 1, /)
    expect(await authenticator(bob, 1)).toBe(atEpoch1)
    expect(await authenticator(carol, 1)).toBe(atEpoch1)

    // Bob updates his leaf: the others apply his commit.
    bob.line('/update')
    await bob.waitFor('updated your leaf secret (epoch 2)')
    await alice.waitFor('epoch 2: commit by bob/phone')
    await carol.waitFor('epoch 2: commit by bob/phone')
    const atEpoch2 = await authenticator(alice, 2)
    expect(atEpoch2).not.toBe(atEpoch1)
    expect(await authenticator(carol, 2)).toBe(atEpoch2)

    // Safety numbers: alice's view of bob equals bob's own.
    alice.line('/safety bob')
    bob.line('/safety')
    const aliceSees = (await alice.waitFor(/safety number of bob: ([\d ]+)/))[1]!.trim()
    const bobSees = (await bob.waitFor(/safety number of bob: ([\d ]+)/))[1]!.trim()
    expect(aliceSees).toMatch(/^\d{5}( \d{5})+$/)
    expect(bobSees).toBe(aliceSees)

    // Carol asks to leave (a self-Remove proposal the channel orders); the next
    // commit by a member includes it: here alice's /remove, which commits
    // carol's own proposal by reference instead of a second Remove.
    carol.line('/leave')
    await carol.waitFor(/asked to leave group [0-9a-f]{8} \(proposal #\d+\)/)
    alice.line('/remove carol')
    await alice.waitFor('removed carol/desk (epoch 3)')
    await carol.waitFor(`you were removed from group ${groupId.slice(0, 8)} by alice/laptop`)
    await bob.waitFor('carol/desk was removed (epoch 3)')
    alice.line('after carol left')
    await bob.waitFor('<alice/laptop> after carol left')
    carol.line('/groups')
    await carol.waitFor(`${groupId} epoch 3, removed`)
    expect(carol.screen()).not.toContain('after carol left')

    // The server restarts: clients notice, reconnect on their own, and carry on.
    await server.stop()
    await alice.waitFor('connection lost; reconnecting')
    await bob.waitFor('connection lost; reconnecting')
    server = await startServer(join(root, 'server'), port)
    await alice.waitFor('reconnected; catching up', { timeoutMs: 40_000 })
    await bob.waitFor('reconnected; catching up', { timeoutMs: 40_000 })
    bob.line('back after the restart')
    await alice.waitFor('<bob/phone> back after the restart')

    // Alice quits and starts again from her data dir: same identity, group and history.
    alice.line('/quit')
    for (let i = 0; alice.alive(); i++) {
      if (i > 200) throw new Error('alice did not quit')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    alice = chat('alice2', 'alice', 'laptop')
    await alice.waitFor('ready.')
    alice.line('/groups')
    await alice.waitFor(`* 1. ${groupId} epoch 3, 2 members`)
    alice.line('/history')
    await alice.waitFor(/<bob\/phone> half a line[\s\S]*<alice\/laptop> after carol left[\s\S]*<bob\/phone> back after the restart/)
    alice.line('still here')
    await bob.waitFor('<alice/laptop> still here')
  })
})
