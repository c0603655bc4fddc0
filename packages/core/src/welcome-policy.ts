import type { CiphersuiteImpl, ClientState, KeyPackage, Welcome } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import type { CredentialValidator } from './identity.js'
import type { Member } from './group-types.js'
import { memberAtLeaf, membersOf, welcomeSignerLeaf } from './mls-adapter.js'
import { toHex } from './bytes.js'

/**
 * A Welcome that arrived in this client's mailbox, checked (it decrypts, is
 * for a KeyPackage of this client, and every member's credential passed the
 * Authentication Service: verified device lists) but not joined yet: what the
 * app's `WelcomePolicy` decides on.
 */
export interface Invitation {
  /** Its position in the Welcome mailbox; `acceptInvitation`/`declineInvitation` take it. */
  readonly id: number
  /** The group it invites to. */
  readonly groupId: Uint8Array
  /** `groupId` in hex, as `client.group()` takes it. */
  readonly groupIdHex: string
  /** The member who signed the GroupInfo: the committer who added this client. */
  readonly inviter: Member | undefined
  /** Every member of the group as the Welcome describes it, this client included. */
  readonly members: readonly Member[]
  /** The epoch the group would be joined at. */
  readonly epoch: bigint
}

/**
 * What to do with an invitation:
 * - `accept`: join the group (the behaviour without a policy);
 * - `decline`: consume the Welcome without joining; the group is not created
 *   locally and a one-time KeyPackage it used is deleted (`welcome:declined`);
 * - `ask`: keep it as a pending invitation (`invitation:pending`) until the
 *   app calls `acceptInvitation(id)` or `declineInvitation(id)`; the mailbox
 *   moves on meanwhile.
 */
export type WelcomeDecision = 'accept' | 'decline' | 'ask'

/**
 * The app's choice of which invitations to accept (`MlsClientInit.welcomePolicy`).
 * A policy that throws is treated as `ask`: nothing is joined and nothing is lost.
 */
export type WelcomePolicy = (invitation: Invitation) => WelcomeDecision | Promise<WelcomeDecision>

/** Accept every invitation: the default, for compatibility with clients before the hook. */
export const acceptAllWelcomes: WelcomePolicy = () => 'accept'

/**
 * Accept invitations whose inviter's user `isKnown` says yes (the app's
 * contacts, say), and `otherwise` (default `ask`) the rest.
 */
export function welcomesFrom(isKnown: (userId: string) => boolean | Promise<boolean>, otherwise: Exclude<WelcomeDecision, 'accept'> = 'ask'): WelcomePolicy {
  return async (invitation) => (invitation.inviter !== undefined && (await isKnown(invitation.inviter.userId)) ? 'accept' : otherwise)
}

/**
 * Describe a Welcome that `joinGroup` accepted as `state`: its members, and
 * the GroupInfo signer (decrypted again from the same Welcome; the join
 * verified that signature already).
 */
export async function describeInvitation(
  id: number,
  welcome: Welcome,
  keyPackage: KeyPackage,
  initPrivateKey: Uint8Array,
  state: ClientState,
  cs: CiphersuiteImpl,
  validator: CredentialValidator
): Promise<Invitation> {
  const members = membersOf(state, validator)
  let inviterId: ClientId | undefined
  try {
    const signer = await welcomeSignerLeaf(welcome, keyPackage, initPrivateKey, cs)
    if (signer !== undefined) inviterId = memberAtLeaf(state.ratchetTree, signer, validator)
  } catch {
    inviterId = undefined
  }
  return {
    id,
    groupId: state.groupContext.groupId.slice(),
    groupIdHex: toHex(state.groupContext.groupId),
    inviter: members.find((m) => m.clientId === inviterId),
    members,
    epoch: state.groupContext.epoch
  }
}
