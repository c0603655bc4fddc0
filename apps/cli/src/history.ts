import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** One line of a group's local history. */
export interface HistoryEntry {
  /** Channel position of the message, when it came through the channel. */
  readonly seq: number | undefined
  readonly sender: string
  readonly text: string
  readonly epoch: string
  /** Milliseconds since the epoch, when this device received it. */
  readonly at: number
}

/**
 * The messages this device read, per group, as JSON lines in the data dir
 * (`history-<group id>.jsonl`). The MLS state deletes message keys after use,
 * so this file is the only place a message can be read again: it holds
 * plaintext and is as private as the data dir.
 */
export class History {
  constructor(private readonly folder: string) {}

  append(groupIdHex: string, entry: HistoryEntry): void {
    appendFileSync(this.file(groupIdHex), `${JSON.stringify(entry)}\n`, { mode: 0o600 })
  }

  /** The last `limit` entries of a group, oldest first. */
  read(groupIdHex: string, limit: number): HistoryEntry[] {
    const file = this.file(groupIdHex)
    if (!existsSync(file)) return []
    const lines = readFileSync(file, 'utf8').split('\n').filter((line) => line.length > 0)
    const entries: HistoryEntry[] = []
    for (const line of lines.slice(-limit)) {
      try {
        entries.push(JSON.parse(line) as HistoryEntry)
      } catch {
        // a line cut short by a crash: skip it
      }
    }
    return entries
  }

  private file(groupIdHex: string): string {
    if (!/^[0-9a-f]+$/.test(groupIdHex)) throw new Error(`not a group id: ${groupIdHex}`)
    return join(this.folder, `history-${groupIdHex}.jsonl`)
  }
}
