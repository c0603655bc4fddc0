import type { Group, MlsClient } from '@mls/core'
import { createMlsClient, MlsToolkitError } from '@mls/core'
import { nobleCrypto } from '@mls/crypto-noble'
import { openIndexedDbClientStore } from '@mls/storage-indexeddb'
import { webSockets } from '@mls/transport-ws'
import { EncryptedHistory } from './history-store.js'
import { inspectGroup, nodeLevel, refreshedNodes, type GroupView, type TreeNodeView } from './inspect.js'

/** A chat line, with its channel position. */
interface MessageEntry {
  readonly seq: number | undefined
  readonly epoch: string
  readonly sender: string
  readonly text: string
}

/** One commit as the timeline shows it. */
interface TimelineEntry {
  readonly epoch: string
  readonly committer: string
  readonly proposals: readonly string[]
  /** The channel position the group had reached when it applied the commit. */
  readonly seq: number
  readonly refreshed: readonly number[]
}

/** One group's chat log and inspector history, as stored (encrypted, see history-store.ts). */
interface GroupLog {
  messages: MessageEntry[]
  timeline: TimelineEntry[]
  authenticators: Record<string, { epoch: string; authenticator: string }>
}

/** What this browser keeps beside the MLS state (which lives in IndexedDB): the chat log and the inspector's history, by group. */
interface AppLog {
  messages: Record<string, MessageEntry[]>
  timeline: Record<string, TimelineEntry[]>
  authenticators: Record<string, Record<string, { epoch: string; authenticator: string }>>
}

/** Marks the app's own control messages: a member announcing its epoch authenticator to the group. */
const AUTHENTICATOR_MARK = '\u0000mls-web:authenticator:'
const SESSION_KEY = 'mls-web:session'

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
const element = (tag: string, props: Record<string, string> = {}, text?: string): HTMLElement => {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) node.setAttribute(key, value)
  if (text !== undefined) node.textContent = text
  return node
}
const describe = (error: unknown): string =>
  MlsToolkitError.isInstance(error) ? `${error.message} (${error.code})` : error instanceof Error ? error.message : String(error)

let client: MlsClient | undefined
let current: Group | undefined
let log: AppLog = { messages: {}, timeline: {}, authenticators: {} }
let history: EncryptedHistory<GroupLog> | undefined
const lastTree = new Map<string, readonly TreeNodeView[]>()

/** Where an earlier version of this app kept the log, in plaintext; moved into the encrypted history at sign-in. */
function legacyLogKey(): string {
  return `mls-web:log:${client!.clientId}`
}
function groupLog(groupIdHex: string): GroupLog {
  return { messages: log.messages[groupIdHex] ?? [], timeline: log.timeline[groupIdHex] ?? [], authenticators: log.authenticators[groupIdHex] ?? {} }
}
/** Groups this device left or was removed from: their history is deleted and stays so (until a new Welcome). */
const forgotten = new Set<string>()
function saveLog(groupIdHex: string): void {
  if (forgotten.has(groupIdHex)) return
  void history?.save(groupIdHex, groupLog(groupIdHex)).catch((error: unknown) => notice(`could not store the history: ${describe(error)}`, 'error'))
}
/** Forget a group's history, here and at rest: its log and its key. */
function forgetLog(groupIdHex: string): void {
  forgotten.add(groupIdHex)
  delete log.messages[groupIdHex]
  delete log.timeline[groupIdHex]
  delete log.authenticators[groupIdHex]
  void history
    ?.delete(groupIdHex)
    .then(() => notice(`deleted this device's history of ${groupIdHex.slice(0, 8)}`))
    .catch((error: unknown) => notice(`could not delete the history: ${describe(error)}`, 'error'))
}
async function loadLog(): Promise<void> {
  history = await EncryptedHistory.open<GroupLog>(`mls-web-history:${client!.clientId}`)
  log = { messages: {}, timeline: {}, authenticators: {} }
  const legacy = localStorage.getItem(legacyLogKey())
  if (legacy !== null) {
    const old = JSON.parse(legacy) as AppLog
    for (const groupIdHex of new Set([...Object.keys(old.messages), ...Object.keys(old.timeline), ...Object.keys(old.authenticators)])) {
      await history.save(groupIdHex, { messages: old.messages[groupIdHex] ?? [], timeline: old.timeline[groupIdHex] ?? [], authenticators: old.authenticators[groupIdHex] ?? {} })
    }
    localStorage.removeItem(legacyLogKey())
  }
  for (const [groupIdHex, stored] of await history.loadAll()) {
    log.messages[groupIdHex] = stored.messages
    log.timeline[groupIdHex] = stored.timeline
    log.authenticators[groupIdHex] = stored.authenticators
  }
}
function notice(text: string, kind: 'info' | 'error' = 'info'): void {
  const line = element('li', { class: kind, 'data-testid': 'notice' }, `${new Date().toLocaleTimeString()} ${text}`)
  $('notices').prepend(line)
}

async function signIn(user: string, device: string, server: string): Promise<void> {
  const store = await openIndexedDbClientStore({ name: `mls-web:${user}/${device}` })
  client = await createMlsClient({
    userId: user,
    deviceId: device,
    crypto: nobleCrypto(),
    store,
    transport: webSockets({ url: server }),
    keyPackages: { replenishBelow: 3 },
    start: false
  })
  localStorage.setItem(SESSION_KEY, JSON.stringify({ user, device, server }))
  await loadLog()
  for (const group of client.listGroups()) lastTree.set(group.groupIdHex, inspectGroup(group).tree)
  listen(client)
  await client.start()
  const count = await client.directory.countKeyPackages()
  if (count.oneTime < 3 || !count.lastResort) await client.publishKeyPackages()
  $('signin-form').hidden = true
  $('app').hidden = false
  $('whoami').textContent = `${client.clientId} on ${server}`
  current = client.listGroups().find((g) => g.status !== 'removed')
  render()
}

function listen(c: MlsClient): void {
  c.on('message:received', ({ group, message }) => {
    const text = new TextDecoder().decode(message.plaintext)
    if (text.startsWith(AUTHENTICATOR_MARK)) {
      const report = JSON.parse(text.slice(AUTHENTICATOR_MARK.length)) as { epoch: string; authenticator: string }
      ;(log.authenticators[group.groupIdHex] ??= {})[message.sender] = report
    } else {
      ;(log.messages[group.groupIdHex] ??= []).push({ seq: message.seq, epoch: message.epoch.toString(), sender: message.sender, text })
    }
    saveLog(group.groupIdHex)
    render()
  })
  c.on('group:joined', ({ group }) => {
    notice(`joined group ${group.groupIdHex.slice(0, 8)} from a Welcome at epoch ${group.epoch}`)
    forgotten.delete(group.groupIdHex)
    lastTree.set(group.groupIdHex, inspectGroup(group).tree)
    ;(log.timeline[group.groupIdHex] ??= []).push({ epoch: group.epoch.toString(), committer: '(joined by Welcome)', proposals: [], seq: group.cursor, refreshed: [] })
    if (current === undefined || current.status === 'removed') current = group
    announce(group)
    saveLog(group.groupIdHex)
    render()
  })
  c.on('epoch:changed', ({ group, epoch, committer }) => {
    const view = inspectGroup(group)
    const before = lastTree.get(group.groupIdHex) ?? []
    ;(log.timeline[group.groupIdHex] ??= []).push({
      epoch: epoch.toString(),
      committer: committer ?? '?',
      proposals: ['none: update path only'],
      seq: group.cursor,
      refreshed: refreshedNodes(before, view.tree)
    })
    lastTree.set(group.groupIdHex, view.tree)
    announce(group)
    saveLog(group.groupIdHex)
    render()
  })
  // A commit's membership change follows its epoch change at once: it names the commit's Add and Remove proposals.
  c.on('members:changed', ({ group, epoch, added, removed }) => {
    for (const member of added) notice(`${member} joined ${group.groupIdHex.slice(0, 8)}`)
    for (const member of removed) notice(`${member} was removed from ${group.groupIdHex.slice(0, 8)}`)
    const entries = log.timeline[group.groupIdHex] ?? []
    const last = entries.at(-1)
    if (last !== undefined && last.epoch === epoch.toString()) {
      entries[entries.length - 1] = { ...last, proposals: [...added.map((m) => `Add(${m})`), ...removed.map((m) => `Remove(${m})`)] }
    }
    saveLog(group.groupIdHex)
    render()
  })
  c.on('group:removed', ({ group, by }) => {
    notice(`you were removed from ${group.groupIdHex.slice(0, 8)} by ${by ?? '?'}`, 'error')
    forgetLog(group.groupIdHex)
    if (current === group) current = c.listGroups().find((g) => g.status !== 'removed')
    render()
  })
  c.on('connection:state', ({ state }) => notice(`connection ${state}`, state === 'online' ? 'info' : 'error'))
  c.on('sync:failed', ({ error }) => notice(`sync failed, retrying: ${describe(error)}`, 'error'))
  c.on('message:rejected', ({ error }) => notice(`rejected a message: ${describe(error)}`, 'error'))
}

/** Tell the group this member's epoch authenticator, so every member's inspector shows agreement. */
function announce(group: Group): void {
  if (group.status === 'removed') return
  const view = inspectGroup(group)
  ;(log.authenticators[group.groupIdHex] ??= {})[client!.clientId] = { epoch: view.epoch, authenticator: view.epochAuthenticator }
  void group.send(`${AUTHENTICATOR_MARK}${JSON.stringify({ epoch: view.epoch, authenticator: view.epochAuthenticator })}`).catch((error: unknown) => notice(`could not announce the epoch authenticator: ${describe(error)}`, 'error'))
}

async function act(what: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run()
  } catch (error) {
    notice(`${what} failed: ${describe(error)}`, 'error')
  }
  render()
}

function render(): void {
  if (client === undefined) return
  const groups = $('groups')
  groups.replaceChildren()
  for (const group of client.listGroups()) {
    const item = element('li', { 'data-testid': 'group', 'data-group': group.groupIdHex, class: group === current ? 'current' : '' })
    const status = group.status === 'removed' ? 'removed' : `epoch ${group.epoch}, ${group.members().length} members`
    item.append(element('button', {}, `${group.groupIdHex.slice(0, 8)} · ${status}`))
    item.onclick = () => {
      current = group
      render()
    }
    groups.append(item)
  }
  const live = current !== undefined && current.status !== 'removed'
  for (const id of ['compose', 'member-actions']) ($(id) as HTMLFieldSetElement).disabled = !live
  $('group-title').textContent = current === undefined ? 'No group: create one or wait for an invitation' : `Group ${current.groupIdHex}`
  const messages = $('messages')
  messages.replaceChildren()
  for (const message of current === undefined ? [] : log.messages[current.groupIdHex] ?? []) {
    const item = element('li', { 'data-testid': 'message' })
    item.append(element('span', { class: 'seq', title: 'channel position' }, `#${message.seq ?? '-'}`), element('b', {}, ` ${message.sender}: `), document.createTextNode(message.text))
    messages.append(item)
  }
  messages.scrollTop = messages.scrollHeight
  const members = $('members')
  members.replaceChildren()
  if (live) {
    for (const member of current!.members()) {
      members.append(element('li', { 'data-testid': 'member' }, `leaf ${member.leafIndex}: ${member.clientId}${member.leafIndex === current!.ownLeafIndex ? ' (you)' : ''}`))
    }
  }
  renderInspector(live ? inspectGroup(current!) : undefined)
}

function renderInspector(view: GroupView | undefined): void {
  const tree = $('tree')
  const timeline = $('timeline')
  const authenticators = $('authenticators')
  tree.replaceChildren()
  timeline.replaceChildren()
  authenticators.replaceChildren()
  $('inspector-epoch').textContent = view === undefined ? '' : `epoch ${view.epoch} · channel position ${view.cursor}`
  if (view === undefined) return
  const entries = log.timeline[view.groupIdHex] ?? []
  const refreshed = new Set(entries.at(-1)?.refreshed ?? [])
  // The tree drawn level by level, root at the top; each node at its array position.
  const height = view.tree.length === 0 ? 0 : nodeLevel(view.tree.length) + 1
  const grid = element('div', { class: 'tree-grid', style: `grid-template-columns: repeat(${view.tree.length}, minmax(2.2em, 1fr))` })
  for (let level = height; level >= 0; level--) {
    for (const node of view.tree) {
      if (nodeLevel(node.nodeIndex) !== level) continue
      const label = node.kind === 'blank' ? '∅' : node.kind === 'leaf' ? node.clientId ?? '?' : node.publicKey.slice(0, 4)
      const cell = element('div', {
        class: `node ${node.kind}${refreshed.has(node.nodeIndex) ? ' refreshed' : ''}${node.leafIndex === view.ownLeafIndex ? ' own' : ''}`,
        style: `grid-column: ${node.nodeIndex + 1}; grid-row: ${height - level + 1}`,
        title: `node ${node.nodeIndex}${node.publicKey === '' ? ' (blank)' : ` key ${node.publicKey}`}`,
        'data-testid': 'tree-node',
        'data-node': String(node.nodeIndex),
        'data-kind': node.kind,
        'data-client': node.clientId ?? '',
        'data-refreshed': String(refreshed.has(node.nodeIndex))
      }, label)
      grid.append(cell)
    }
  }
  tree.append(grid)
  for (const entry of [...entries].reverse()) {
    timeline.append(
      element('li', { 'data-testid': 'timeline-entry', 'data-epoch': entry.epoch }, `epoch ${entry.epoch} @#${entry.seq} by ${entry.committer}: ${entry.proposals.join(', ') || '-'}${entry.refreshed.length > 0 ? ` · refreshed nodes ${entry.refreshed.join(', ')}` : ''}`)
    )
  }
  const reports = log.authenticators[view.groupIdHex] ?? {}
  for (const member of current!.members()) {
    const report = reports[member.clientId]
    const agrees = report !== undefined && report.epoch === view.epoch && report.authenticator === view.epochAuthenticator
    const text = report === undefined ? 'not announced yet' : `epoch ${report.epoch} ${report.authenticator.slice(0, 16)}…`
    authenticators.append(
      element('li', { 'data-testid': 'authenticator', 'data-client': member.clientId, 'data-authenticator': report?.authenticator ?? '', 'data-epoch': report?.epoch ?? '', class: agrees ? 'agrees' : 'differs' }, `${agrees ? '✔' : '…'} ${member.clientId}: ${text}`)
    )
  }
}

function wire(): void {
  const params = new URLSearchParams(location.search)
  const defaultServer = params.get('server') ?? (document.body.dataset.server || `ws://${location.hostname}:8080`)
  ;($('server') as HTMLInputElement).value = defaultServer
  $('signin-form').onsubmit = (event) => {
    event.preventDefault()
    const value = (id: string): string => ($(id) as HTMLInputElement).value.trim()
    void signIn(value('user'), value('device'), value('server')).catch((error: unknown) => notice(`sign-in failed: ${describe(error)}`, 'error'))
  }
  $('new-group').onclick = () =>
    void act('create group', async () => {
      current = await client!.createGroup()
      lastTree.set(current.groupIdHex, inspectGroup(current).tree)
      log.timeline[current.groupIdHex] = [{ epoch: '0', committer: `${client!.clientId} (created)`, proposals: [], seq: 0, refreshed: [] }]
      saveLog(current.groupIdHex)
    })
  $('compose-form').onsubmit = (event) => {
    event.preventDefault()
    const input = $('text') as HTMLInputElement
    const text = input.value
    if (text.trim() === '') return
    input.value = ''
    void act('send', () => current!.send(text))
  }
  $('invite-form').onsubmit = (event) => {
    event.preventDefault()
    const input = $('invite') as HTMLInputElement
    const users = input.value.split(/[\s,]+/).filter((u) => u !== '')
    input.value = ''
    void act('invite', async () => {
      const outcome = await client!.addUsers(current!, users)
      for (const skipped of outcome.skipped) notice(`left out ${skipped.clientId}: ${skipped.reason}`, 'error')
    })
  }
  $('remove-form').onsubmit = (event) => {
    event.preventDefault()
    const input = $('remove') as HTMLInputElement
    const targets = input.value.split(/[\s,]+/).filter((u) => u !== '')
    input.value = ''
    void act('remove', () => current!.removeMembers(targets))
  }
  $('update').onclick = () => void act('update', () => current!.update())
  // Leaving is a self-Remove proposal; the group (and its history here) goes when a member's next commit includes it.
  $('leave').onclick = () =>
    void act('leave', async () => {
      const group = current!
      await group.leave()
      notice(`asked to leave ${group.groupIdHex.slice(0, 8)}: you are removed with the next commit by a member`)
    })
  $('safety-form').onsubmit = (event) => {
    event.preventDefault()
    const user = ($('safety-user') as HTMLInputElement).value.trim() || client!.userId
    void act('safety number', async () => ($('safety') as HTMLElement).replaceChildren(`${user}: ${await client!.fingerprint(user)}`))
  }
  const saved = localStorage.getItem(SESSION_KEY)
  if (saved !== null) {
    const { user, device, server } = JSON.parse(saved) as { user: string; device: string; server: string }
    void signIn(user, device, server).catch((error: unknown) => notice(`sign-in failed: ${describe(error)}`, 'error'))
  }
}

/** For the end-to-end test and the curious: the live client and the inspector's reading of the current group. */
;(globalThis as { mlsWeb?: unknown }).mlsWeb = {
  get client() {
    return client
  },
  inspectCurrent: () => (current === undefined ? undefined : inspectGroup(current))
}
wire()
