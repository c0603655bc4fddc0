import type { Group, MlsClient } from '@mls/core'
import { MlsToolkitError, toHex } from '@mls/core'
import type { History } from './history.js'

/** The commands of the chat, as `/help` prints them. */
export const HELP = `Commands (anything not starting with / is sent to the current group):
  /create                 create a group and switch to it
  /invite <user> [...]    add every device of these users to the current group
  /groups                 list your groups (* marks the current one)
  /switch <n|id>          make group number n (from /groups) or with this id prefix current
  /members                list the current group's members and where they sit in the tree
  /update                 refresh your leaf secret (a commit with an update path)
  /remove <user|user/device>  remove a member from the current group
  /leave                  ask to leave the current group (a Remove proposal): the next commit by a member removes you
  /epoch                  show the current epoch and its epoch authenticator
  /safety [user]          show a user's safety number (yours by default); compare it out of band
  /history [n]            show the last n messages of the current group stored on this device (default 20)
  /help                   this list
  /quit                   leave the chat (your identity and groups stay in the data dir)`

const short = (hex: string): string => hex.slice(0, 8)

/** What the chat prints: a line and its kind (the terminal may style them). */
export type Output = (line: string, kind?: 'message' | 'notice' | 'error' | 'info') => void

/**
 * The chat's logic over an `MlsClient`: commands in, lines out. The terminal
 * front end (main.ts) only reads lines and prints what this emits, so the
 * same session could run under any other UI.
 */
export class ChatSession {
  private current: Group | undefined
  private readonly unsubscribe: (() => void)[] = []

  constructor(
    readonly client: MlsClient,
    private readonly history: History,
    private readonly print: Output
  ) {
    this.current = client.listGroups().find((g) => g.status !== 'removed')
    const on = client.on.bind(client)
    this.unsubscribe.push(
      on('message:received', ({ group, message }) => {
        const text = new TextDecoder().decode(message.plaintext)
        this.history.append(group.groupIdHex, { seq: message.seq, sender: message.sender, text, epoch: message.epoch.toString(), at: Date.now() })
        const where = group === this.current ? '' : `[${short(group.groupIdHex)}] `
        this.print(`${where}<${message.own ? 'you' : message.sender}> ${text}`, 'message')
      }),
      on('group:joined', ({ group }) => {
        this.print(`* joined group ${short(group.groupIdHex)} from a Welcome (epoch ${group.epoch}, ${group.members().length} members)`, 'notice')
        if (this.current === undefined || this.current.status === 'removed') {
          this.current = group
          this.print(`* current group is now ${short(group.groupIdHex)}`, 'notice')
        }
      }),
      on('members:changed', ({ group, added, removed }) => {
        const where = `[${short(group.groupIdHex)}]`
        for (const member of added) this.print(`* ${where} ${member} joined (epoch ${group.epoch})`, 'notice')
        for (const member of removed) this.print(`* ${where} ${member} was removed (epoch ${group.epoch})`, 'notice')
      }),
      on('epoch:changed', ({ group, epoch, committer, own }) => {
        if (own) return
        this.print(`* [${short(group.groupIdHex)}] epoch ${epoch}: commit by ${committer ?? 'an external sender'}`, 'notice')
      }),
      on('group:removed', ({ group, by }) => {
        if (this.current === group) this.current = this.client.listGroups().find((g) => g.status !== 'removed')
        this.print(`* you were removed from group ${short(group.groupIdHex)} by ${by ?? 'unknown'}; its secrets are deleted`, 'notice')
      }),
      on('connection:state', ({ state, cause }) => {
        const why = cause instanceof Error ? `: ${cause.message}` : ''
        this.print(`* connection ${state}${why}`, state === 'online' ? 'notice' : 'error')
      }),
      on('sync:failed', ({ error }) => this.print(`! sync failed (retrying): ${describe(error)}`, 'error')),
      on('message:rejected', ({ group, error }) => this.print(`! [${short(group.groupIdHex)}] rejected a message: ${describe(error)}`, 'error')),
      on('welcome:rejected', ({ error }) => this.print(`! rejected a Welcome: ${describe(error)}`, 'error')),
      on('contact:changed', (change) => this.print(`* ${change.userId}'s devices changed: check their /safety number`, 'notice')),
      on('device:skipped', (skipped) => this.print(`! left out ${skipped.clientId}: ${skipped.reason}`, 'error'))
    )
  }

  /** The group that plain lines go to. */
  get currentGroup(): Group | undefined {
    return this.current
  }

  /** The prompt: who you are and where you write. */
  prompt(): string {
    const where = this.current === undefined ? 'no group' : `${short(this.current.groupIdHex)}@${this.current.epoch}`
    return `${this.client.userId}/${this.client.deviceId} ${where}> `
  }

  /** Run one line typed by the user; errors are printed, never thrown. Returns false on /quit. */
  async handle(line: string): Promise<boolean> {
    const trimmed = line.trim()
    if (trimmed.length === 0) return true
    try {
      if (!trimmed.startsWith('/')) {
        await this.requireGroup().send(trimmed)
        return true
      }
      const [command, ...args] = trimmed.split(/\s+/)
      switch (command) {
        case '/quit':
        case '/exit':
          return false
        case '/help':
          this.print(HELP, 'info')
          break
        case '/create': {
          const group = await this.client.createGroup()
          this.current = group
          this.print(`* created group ${short(group.groupIdHex)} (${group.groupIdHex}); invite people with /invite <user>`, 'notice')
          break
        }
        case '/invite': {
          if (args.length === 0) throw new CommandError('usage: /invite <user> [...]')
          const outcome = await this.client.addUsers(this.requireGroup(), args)
          for (const skipped of outcome.skipped) this.print(`! left out ${skipped.clientId}: ${skipped.reason}`, 'error')
          if (outcome.kind === 'committed') this.print(`* invited ${outcome.added.join(', ')} (epoch ${outcome.epoch})`, 'notice')
          else this.print(`* nothing to do: ${outcome.reason}`, 'notice')
          break
        }
        case '/groups':
          this.listGroups()
          break
        case '/switch':
          this.switchTo(args[0])
          break
        case '/members': {
          const group = this.requireGroup()
          for (const member of group.members()) {
            const you = member.leafIndex === group.ownLeafIndex ? ' (you)' : ''
            this.print(`  leaf ${member.leafIndex}: ${member.clientId}${you}`, 'info')
          }
          break
        }
        case '/update': {
          const outcome = await this.requireGroup().update()
          if (outcome.kind === 'committed') this.print(`* updated your leaf secret (epoch ${outcome.epoch})`, 'notice')
          break
        }
        case '/remove': {
          if (args.length === 0) throw new CommandError('usage: /remove <user|user/device>')
          const outcome = await this.requireGroup().removeMembers(args)
          if (outcome.kind === 'committed') this.print(`* removed ${outcome.removed.join(', ')} (epoch ${outcome.epoch})`, 'notice')
          else this.print(`* nothing to do: ${outcome.reason}`, 'notice')
          break
        }
        case '/leave': {
          const group = this.requireGroup()
          const { seq } = await group.leave()
          this.print(`* asked to leave group ${short(group.groupIdHex)} (proposal #${seq}); the next commit by a member removes you`, 'notice')
          break
        }
        case '/epoch': {
          const group = this.requireGroup()
          this.print(`  epoch ${group.epoch}, epoch authenticator ${toHex(group.epochAuthenticator())}`, 'info')
          break
        }
        case '/safety': {
          const user = args[0] ?? this.client.userId
          this.print(`  safety number of ${user}: ${await this.client.fingerprint(user)}`, 'info')
          break
        }
        case '/history': {
          const limit = args[0] === undefined ? 20 : Number.parseInt(args[0], 10)
          if (!Number.isSafeInteger(limit) || limit <= 0) throw new CommandError('usage: /history [n], n > 0')
          const entries = this.history.read(this.requireGroup().groupIdHex, limit)
          if (entries.length === 0) this.print('  (no messages stored for this group)', 'info')
          for (const entry of entries) {
            this.print(`  #${entry.seq ?? '-'} e${entry.epoch} ${new Date(entry.at).toISOString()} <${entry.sender}> ${entry.text}`, 'info')
          }
          break
        }
        default:
          throw new CommandError(`unknown command ${command}; /help lists them`)
      }
    } catch (error) {
      this.print(`! ${describe(error)}`, 'error')
    }
    return true
  }

  close(): void {
    for (const stop of this.unsubscribe) stop()
  }

  private listGroups(): void {
    const groups = this.client.listGroups()
    if (groups.length === 0) this.print('  (no groups yet: /create one, or wait for an invitation)', 'info')
    groups.forEach((group, index) => {
      const mark = group === this.current ? '*' : ' '
      const members = group.status === 'removed' ? 'removed' : `${group.members().length} members`
      this.print(`${mark} ${index + 1}. ${group.groupIdHex} epoch ${group.epoch}, ${members}`, 'info')
    })
  }

  private switchTo(which: string | undefined): void {
    if (which === undefined) throw new CommandError('usage: /switch <n|id prefix>')
    const groups = this.client.listGroups()
    const byNumber = /^\d+$/.test(which) ? groups[Number(which) - 1] : undefined
    const matches = byNumber !== undefined ? [byNumber] : groups.filter((g) => g.groupIdHex.startsWith(which.toLowerCase()))
    if (matches.length !== 1) throw new CommandError(matches.length === 0 ? `no group ${which}` : `${which} matches several groups`)
    this.current = matches[0]
    this.print(`* current group is now ${short(matches[0]!.groupIdHex)}`, 'notice')
  }

  private requireGroup(): Group {
    if (this.current === undefined) throw new CommandError('no current group: /create one, /switch to one, or wait for an invitation')
    if (this.current.status === 'removed') throw new CommandError('you were removed from this group; /switch to another')
    return this.current
  }
}

/** A mistake in a typed command. */
export class CommandError extends Error {}

function describe(error: unknown): string {
  if (MlsToolkitError.isInstance(error)) return `${error.message} (${error.code})`
  return error instanceof Error ? error.message : String(error)
}
