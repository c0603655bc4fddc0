// What the crash test's child writes, shared by the child and the checks.
import { Buffer } from 'node:buffer'

export const G = 'c0ffee'
export const NOW = 1_700_000_000
export const owner = 'alice/phone'
export const acceptor = 'bob/phone'
export const mailbox = 'all/box'

const bytesOf = (text) => new Uint8Array(Buffer.from(text))

/** The roster and access after `epoch` commits: the owner plus one member that changes every epoch. */
export function membersAt(epoch) {
  return {
    roster: [
      { leafIndex: 0, clientId: owner },
      { leafIndex: 1, clientId: `member/${epoch}` }
    ],
    access: [
      { clientId: owner, fromSeq: 0, untilSeq: null },
      { clientId: `member/${epoch}`, fromSeq: -1, untilSeq: null }
    ]
  }
}

/** The commit that takes the group from `epoch` to `epoch + 1`, with two Welcomes. */
export function commitFor(epoch) {
  return {
    expectedEpoch: epoch,
    entry: { kind: 'commit', epoch, sender: owner, message: bytesOf(`commit-${epoch}`), digest: `commit-${epoch}` },
    ...membersAt(epoch + 1n),
    welcomes: [
      { clientId: `member/${epoch + 1n}`, welcome: bytesOf(`welcome-${epoch + 1n}`) },
      { clientId: mailbox, welcome: bytesOf(`welcome-${epoch + 1n}`) }
    ]
  }
}

export function messageFor(label, epoch) {
  return { kind: 'application', epoch, sender: owner, message: bytesOf(`message-${label}`), digest: `message-${label}` }
}
