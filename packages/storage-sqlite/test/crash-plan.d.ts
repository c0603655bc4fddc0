import type { AccessWindow, LogRecord, RosterEntry } from '@mls/core/interfaces'

export declare const G: string
export declare const NOW: number
export declare const owner: string
export declare const acceptor: string
export declare const mailbox: string
export declare function membersAt(epoch: bigint): { roster: RosterEntry[]; access: AccessWindow[] }
export declare function commitFor(epoch: bigint): {
  expectedEpoch: bigint
  entry: Omit<LogRecord, 'seq'>
  roster: RosterEntry[]
  access: AccessWindow[]
  welcomes: { clientId: string; welcome: Uint8Array }[]
}
export declare function messageFor(label: string, epoch: bigint): Omit<LogRecord, 'seq'>
