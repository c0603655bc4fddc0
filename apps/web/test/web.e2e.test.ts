import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startWebServer, type WebServer } from '../src/serve.js'
import type { GroupView } from '../src/browser/inspect.js'
import { startServerProcess } from './server-process.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ENSURE_CHROMIUM = fileURLToPath(new URL('../../../scripts/ensure-chromium.mjs', import.meta.url))
/** Screenshots of each step, kept as test artifacts (gitignored). */
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url))

interface RealState extends GroupView {
  readonly members: readonly { leafIndex: number; clientId: string }[]
}

// Two browser contexts (separate IndexedDB, separate WebSockets) chat through a
// real apps/server process; the web app is served and bundled as `pnpm web` does.
describe('the web chat in headless Chromium against apps/server', () => {
  const root = mkdtempSync(join(tmpdir(), 'mls-web-e2e-'))
  let server: Awaited<ReturnType<typeof startServerProcess>>
  let web: WebServer
  let browser: Browser
  const errors: string[] = []

  beforeAll(async () => {
    execFileSync(process.execPath, [ENSURE_CHROMIUM], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 })
    mkdirSync(ARTIFACTS, { recursive: true })
    server = await startServerProcess(join(root, 'server'))
    web = await startWebServer({ port: 0, server: server.url })
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] })
  })
  afterAll(async () => {
    await browser?.close()
    await web?.close()
    await server?.stop()
    rmSync(root, { recursive: true, force: true })
  })

  const open = async (user: string): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width: 1500, height: 900 } })
    const page = await context.newPage()
    page.on('pageerror', (error) => errors.push(`${user}: ${error.message}`))
    await page.goto(web.url)
    await page.fill('#user', user)
    await page.click('#signin-button')
    await page.locator('#whoami').filter({ hasText: `${user}/web` }).waitFor()
    return page
  }
  const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
  /**
   * The group's real state, read in the page straight from the live client's
   * Group (its ts-mls ratchet tree, members, epoch, authenticator, cursor), not
   * through the inspector's code or the DOM.
   */
  const real = (page: Page): Promise<RealState> =>
    page.evaluate(() => {
      interface LiveGroup {
        status: string
        epoch: bigint
        cursor: number
        groupIdHex: string
        ownLeafIndex: number
        epochAuthenticator(): Uint8Array
        members(): { leafIndex: number; clientId: string }[]
        mlsState: { ratchetTree: ({ nodeType: 'leaf' | 'parent' } | undefined)[] }
      }
      const client = (globalThis as unknown as { mlsWeb: { client: { listGroups(): LiveGroup[] } } }).mlsWeb.client
      const group = client.listGroups().find((g) => g.status !== 'removed')!
      const members = group.members().map((m) => ({ leafIndex: m.leafIndex, clientId: m.clientId }))
      const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
      return {
        groupIdHex: group.groupIdHex,
        epoch: group.epoch.toString(),
        ownLeafIndex: group.ownLeafIndex,
        epochAuthenticator: hex(group.epochAuthenticator()),
        cursor: group.cursor,
        members,
        tree: group.mlsState.ratchetTree.map((node, nodeIndex) => ({
          nodeIndex,
          kind: node === undefined ? ('blank' as const) : node.nodeType,
          leafIndex: nodeIndex % 2 === 0 ? nodeIndex / 2 : undefined,
          clientId: nodeIndex % 2 === 0 && node !== undefined ? members.find((m) => m.leafIndex === nodeIndex / 2)?.clientId : undefined,
          publicKey: ''
        }))
      }
    })
  /** What the inspector shows, read from the DOM. */
  const shown = (page: Page) =>
    page.evaluate(() => ({
      epoch: document.getElementById('inspector-epoch')!.textContent,
      nodes: Array.from(document.querySelectorAll<HTMLElement>('[data-testid=tree-node]')).map((n) => ({ node: Number(n.dataset.node), kind: n.dataset.kind, client: n.dataset.client, refreshed: n.dataset.refreshed === 'true' })),
      authenticators: Array.from(document.querySelectorAll<HTMLElement>('[data-testid=authenticator]')).map((n) => ({ client: n.dataset.client, epoch: n.dataset.epoch, authenticator: n.dataset.authenticator })),
      timeline: Array.from(document.querySelectorAll<HTMLElement>('[data-testid=timeline-entry]')).map((n) => n.textContent)
    }))
  const message = (page: Page, text: string) => page.locator('[data-testid=message]').filter({ hasText: text }).waitFor()
  const noticeShown = (page: Page, text: string) => page.locator('[data-testid=notice]').filter({ hasText: text }).waitFor()
  /**
   * Everything this origin keeps in localStorage and IndexedDB, as raw values:
   * every key and value of localStorage, and every key and record of every
   * object store of every database, strings as they are and bytes decoded as
   * Latin-1 (what a dump of the storage would show). CryptoKeys are opaque.
   */
  const rawStorage = (page: Page) =>
    page.evaluate(async () => {
      const texts: string[] = []
      for (let i = 0; i < localStorage.length; i++) texts.push(localStorage.key(i)!, localStorage.getItem(localStorage.key(i)!)!)
      const latin1 = (bytes: Uint8Array) => Array.from(bytes, (b) => String.fromCharCode(b)).join('')
      const walk = (value: unknown): void => {
        if (typeof value === 'string') texts.push(value)
        else if (value instanceof ArrayBuffer) texts.push(latin1(new Uint8Array(value)))
        else if (ArrayBuffer.isView(value)) texts.push(latin1(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)))
        else if (value instanceof CryptoKey || value === null || typeof value !== 'object') return
        else if (value instanceof Map) value.forEach((v, k) => [k, v].forEach(walk))
        else
          for (const [k, v] of Object.entries(value)) {
            texts.push(k)
            walk(v)
          }
      }
      const request = <T>(r: IDBRequest<T>) => new Promise<T>((resolve, reject) => ((r.onsuccess = () => resolve(r.result)), (r.onerror = () => reject(r.error))))
      const records: Record<string, number> = {}
      for (const info of await indexedDB.databases()) {
        const db = await request(indexedDB.open(info.name!))
        for (const name of Array.from(db.objectStoreNames)) {
          const store = db.transaction(name).objectStore(name)
          const [keys, values] = await Promise.all([request(store.getAllKeys()), request(store.getAll())])
          keys.forEach(walk)
          values.forEach(walk)
          records[`${info.name}/${name}`] = values.length
        }
        db.close()
      }
      return { text: texts.join('\n'), records }
    })

  it('signs in, creates a group, invites, chats, updates, survives a reload, removes, leaves; the history is sealed at rest; the inspector shows the real state', async () => {
    const alice = await open('alice')
    const bob = await open('bob')
    const carol = await open('carol')

    await alice.click('#new-group')
    await alice.locator('[data-testid=group]').waitFor()
    // A stranger's name: a clear error, and the group stays at epoch 0.
    await alice.fill('#invite', 'nobody-here')
    await alice.click('#invite-form button')
    await alice.locator('[data-testid=notice].error').filter({ hasText: 'invite failed' }).waitFor()
    expect((await real(alice)).epoch).toBe('0')
    await alice.fill('#invite', 'bob carol')
    await alice.click('#invite-form button')
    await bob.locator('[data-testid=notice]').filter({ hasText: 'joined group' }).waitFor()
    await carol.locator('[data-testid=notice]').filter({ hasText: 'joined group' }).waitFor()
    await alice.locator('[data-testid=member]').filter({ hasText: 'carol/web' }).waitFor()

    await alice.fill('#text', 'hello bob')
    await alice.click('#send')
    await message(bob, 'alice/web: hello bob')
    await message(carol, 'alice/web: hello bob')
    await bob.fill('#text', 'hi alice')
    await bob.click('#send')
    await message(alice, 'bob/web: hi alice')

    // Agreement: every member announces its epoch authenticator; each inspector shows all of them, equal.
    const agreed = async (page: Page, epoch: string) =>
      page.locator('#authenticators .agrees').nth(2).waitFor().then(async () => {
        const state = await real(page)
        expect(state.epoch).toBe(epoch)
        return state
      })
    const aliceState = await agreed(alice, '1')
    const bobState = await agreed(bob, '1')
    expect(bobState.epochAuthenticator).toBe(aliceState.epochAuthenticator)
    expect((await agreed(carol, '1')).epochAuthenticator).toBe(aliceState.epochAuthenticator)
    const aliceShows = await shown(alice)
    expect(aliceShows.authenticators).toEqual([
      { client: 'alice/web', epoch: '1', authenticator: aliceState.epochAuthenticator },
      { client: 'bob/web', epoch: '1', authenticator: aliceState.epochAuthenticator },
      { client: 'carol/web', epoch: '1', authenticator: aliceState.epochAuthenticator }
    ])
    // The tree drawn is the group's tree: every node, its kind and who sits at each leaf.
    expect(aliceShows.nodes.sort((a, b) => a.node - b.node).map(({ node, kind, client }) => ({ node, kind, client }))).toEqual(
      aliceState.tree.map((n) => ({ node: n.nodeIndex, kind: n.kind, client: n.clientId ?? '' }))
    )
    expect(aliceState.members).toEqual([{ leafIndex: 0, clientId: 'alice/web' }, { leafIndex: 1, clientId: 'bob/web' }, { leafIndex: 2, clientId: 'carol/web' }])
    // Four leaves (node indices 0, 2, 4, 6), the last one blank; parents 1, 3, 5.
    expect(aliceShows.nodes.filter((n) => n.node % 2 === 0).sort((a, b) => a.node - b.node).map((n) => n.client)).toEqual(['alice/web', 'bob/web', 'carol/web', ''])
    expect(aliceShows.epoch).toBe(`epoch 1 · channel position ${aliceState.cursor}`)
    expect(aliceShows.timeline[0]).toMatch(/^epoch 1 @#\d+ by alice\/web: Add\(bob\/web\), Add\(carol\/web\)/)
    await shot(alice, 'alice-after-add')

    // Bob reloads his page: identity, group and log come back from IndexedDB and localStorage, and he carries on.
    await bob.reload()
    await bob.locator('#whoami').filter({ hasText: 'bob/web' }).waitFor()
    await message(bob, 'alice/web: hello bob')
    await message(carol, 'alice/web: hello bob')
    await bob.fill('#text', 'back after a reload')
    await bob.click('#send')
    await message(alice, 'bob/web: back after a reload')

    // The history is at rest in IndexedDB, sealed: no message text in any raw value of localStorage or IndexedDB.
    for (const [page, user, received] of [[bob, 'bob', 'hello bob'], [carol, 'carol', 'hello bob'], [alice, 'alice', 'back after a reload']] as const) {
      const raw = await rawStorage(page)
      expect(raw.records[`mls-web-history:${user}/web/logs`], user).toBe(1)
      expect(raw.records[`mls-web-history:${user}/web/keys`], user).toBe(1)
      expect(raw.text, user).toContain(`${user}/web`) // the scan does read the stored bytes (the MLS state names this member)
      expect(raw.text, user).not.toContain(received)
      expect(raw.text, user).not.toContain('hi alice')
    }

    // Bob (leaf 1, node 2) updates: alice's inspector marks the path his commit refreshed, his leaf and its
    // direct path: parent node 1 and the root, node 3 (neither is filtered: both copath subtrees are occupied).
    await bob.click('#update')
    await alice.locator('[data-testid=timeline-entry][data-epoch="2"]').waitFor()
    const afterUpdate = await shown(alice)
    expect(afterUpdate.timeline[0]).toMatch(/^epoch 2 @#\d+ by bob\/web: none: update path only · refreshed nodes 1, 2, 3$/)
    expect(afterUpdate.nodes.filter((n) => n.refreshed).map((n) => n.node).sort()).toEqual([1, 2, 3])
    await alice.locator('#authenticators .agrees').nth(2).waitFor()
    expect((await real(alice)).epochAuthenticator).toBe((await real(bob)).epochAuthenticator)
    expect((await real(carol)).epochAuthenticator).toBe((await real(bob)).epochAuthenticator)
    await shot(alice, 'alice-after-update')

    // Alice removes bob: he is told, carol applies it, and alice's tree has a blank leaf where he sat.
    await alice.fill('#remove', 'bob')
    await alice.click('#remove-form button')
    await bob.locator('[data-testid=notice]').filter({ hasText: 'you were removed' }).waitFor()
    // Removed: bob's device deletes the group's history, its sealed log and its key.
    await noticeShown(bob, "deleted this device's history")
    expect((await rawStorage(bob)).records).toMatchObject({ 'mls-web-history:bob/web/logs': 0, 'mls-web-history:bob/web/keys': 0 })
    expect(await bob.locator('[data-testid=message]').count()).toBe(0)
    await alice.locator('[data-testid=timeline-entry][data-epoch="3"]').waitFor()
    await carol.locator('[data-testid=timeline-entry][data-epoch="3"]').waitFor()
    await carol.fill('#text', 'only alice and carol now')
    await carol.click('#send')
    await message(alice, 'carol/web: only alice and carol now')
    const afterRemove = await shown(alice)
    const state = await real(alice)
    expect(state.members).toEqual([{ leafIndex: 0, clientId: 'alice/web' }, { leafIndex: 2, clientId: 'carol/web' }])
    expect(afterRemove.nodes.find((n) => n.node === 2)).toMatchObject({ kind: 'blank', client: '' })
    expect(afterRemove.timeline[0]).toMatch(/^epoch 3 @#\d+ by alice\/web: Remove\(bob\/web\)/)
    expect([...afterRemove.nodes].sort((a, b) => a.node - b.node).map(({ node, kind, client }) => ({ node, kind, client }))).toEqual(state.tree.map((n) => ({ node: n.nodeIndex, kind: n.kind, client: n.clientId ?? '' })))
    expect(afterRemove.nodes.some((n) => n.client === 'bob/web')).toBe(false)
    await shot(alice, 'alice-after-remove')
    await shot(bob, 'bob-removed')

    // Carol leaves with the button (a self-Remove proposal); alice's next commit, an update, includes it.
    await carol.click('#leave')
    await noticeShown(carol, 'asked to leave')
    await alice.click('#update')
    await noticeShown(carol, 'you were removed')
    await noticeShown(carol, "deleted this device's history")
    await alice.locator('[data-testid=timeline-entry][data-epoch="4"]').waitFor()
    expect((await real(alice)).members).toEqual([{ leafIndex: 0, clientId: 'alice/web' }])
    await alice.locator('[data-testid=notice]').filter({ hasText: 'carol/web was removed' }).waitFor()
    expect((await rawStorage(carol)).records).toMatchObject({ 'mls-web-history:carol/web/logs': 0, 'mls-web-history:carol/web/keys': 0 })
    expect(await carol.locator('[data-testid=group]').filter({ hasText: 'removed' }).count()).toBe(1)
    await shot(carol, 'carol-left')
    expect(errors).toEqual([])
  })
})
