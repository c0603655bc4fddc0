import type {
  AbortOptions,
  AccessWindow,
  AppendCommitResult,
  AppendMessageResult,
  AppendProposalResult,
  ClientId,
  FetchCursor,
  GroupIdHex,
  GroupRecord,
  IdentityRecord,
  KeyPackageRecord,
  LogPruning,
  LogRecord,
  NewGroupRecord,
  PublicStateRecord,
  RosterEntry,
  ServerStore,
  WelcomePruning,
  WelcomeRecord
} from '@mls/contracts/interfaces'
import { StorageError, distinctBytes, equalBytes } from '@mls/contracts'
import { Database, bytesIn, bytesOut, checkIdentifier, invalid, type PostgresConnectionInit, type Queryable } from './database.js'
import { migrate } from './schema.js'

/** What `openPostgresServerStore` needs: the connection, the schema and a name for logs. */
export type PostgresServerStoreInit = PostgresConnectionInit

type NewLogEntry = Omit<LogRecord, 'seq'>

interface IdentityRow {
  client_id: string
  user_id: string
  device_id: string
  signature_public_key: Buffer
  ciphersuite: string
  registered_at: string
}

interface KeyPackageRow {
  ref: string
  key_package: Buffer
  not_after: string
}

interface GroupRow {
  epoch: string
  last_seq: string
  roster: RosterEntry[]
  access: AccessWindow[]
}

const MAX_EPOCH = (1n << 63n) - 1n

function checkBytes(value: unknown, what: string): void {
  if (!(value instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`)
}

function checkString(value: unknown, what: string): void {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`)
}

function checkInteger(value: unknown, what: string): void {
  if (!Number.isSafeInteger(value)) throw invalid(`${what} must be a safe integer`)
}

function checkEpoch(value: unknown, what: string): void {
  if (typeof value !== 'bigint' || value < 0n || value > MAX_EPOCH) throw invalid(`${what} must be a bigint in [0, 2^63)`)
}

function checkLogEntry(entry: NewLogEntry): void {
  if (entry.kind !== 'commit' && entry.kind !== 'application' && entry.kind !== 'proposal') throw invalid('Log entry kind must be commit, application or proposal')
  checkEpoch(entry.epoch, 'Log entry epoch')
  checkString(entry.sender, 'Log entry sender')
  checkString(entry.digest, 'Log entry digest')
  checkBytes(entry.message, 'Log entry message')
}

function checkPublicState(r: PublicStateRecord | undefined): void {
  if (r === undefined) return
  checkEpoch(r.epoch, 'Public state epoch')
  checkBytes(r.state, 'Public state')
  if (r.groupInfo !== undefined) checkBytes(r.groupInfo, 'GroupInfo')
}

/** A copy of the record as query parameters (taken before any await, so later changes by the caller do not leak in). */
function publicStateIn(r: PublicStateRecord): { epoch: string; state: Buffer; groupInfo: Buffer | null } {
  return { epoch: r.epoch.toString(), state: bytesIn(r.state), groupInfo: r.groupInfo === undefined ? null : bytesIn(r.groupInfo) }
}

/** A copy of the roster with only its fields (what goes into the JSON column). */
function rosterIn(roster: readonly RosterEntry[]): RosterEntry[] {
  return roster.map((e) => {
    checkInteger(e.leafIndex, 'Roster leafIndex')
    checkString(e.clientId, 'Roster clientId')
    return { leafIndex: e.leafIndex, clientId: e.clientId }
  })
}

function accessIn(access: readonly AccessWindow[], resolve: (n: number | null) => number | null = (n) => n): AccessWindow[] {
  return access.map((w) => {
    checkString(w.clientId, 'Access clientId')
    checkInteger(w.fromSeq, 'Access fromSeq')
    if (w.untilSeq !== null) checkInteger(w.untilSeq, 'Access untilSeq')
    return { clientId: w.clientId, fromSeq: resolve(w.fromSeq) as number, untilSeq: resolve(w.untilSeq) }
  })
}

function checkKeyPackage(r: KeyPackageRecord): void {
  checkString(r.ref, 'KeyPackage ref')
  checkBytes(r.keyPackage, 'keyPackage')
  checkInteger(r.notAfter, 'KeyPackage notAfter')
}

const identityOut = (row: IdentityRow): IdentityRecord => ({
  clientId: row.client_id,
  userId: row.user_id,
  deviceId: row.device_id,
  signaturePublicKey: bytesOut(row.signature_public_key),
  ciphersuite: row.ciphersuite,
  registeredAt: Number(row.registered_at)
})

/** An SQL LIMIT for a caller's `limit` (callers return `[]` for `limit <= 0`); `null` is no limit. */
const sqlLimit = (limit: number): number | null => (Number.isFinite(limit) ? Math.ceil(limit) : null)

class PostgresServerStore implements ServerStore {
  readonly specificationVersion = 'v1' as const
  private readonly s: string

  constructor(
    private readonly db: Database,
    schema: string,
    private readonly name: string
  ) {
    this.s = schema
  }

  get [Symbol.toStringTag](): string {
    return `PostgresServerStore(${this.name})`
  }

  async registerIdentity(record: IdentityRecord, options?: AbortOptions): Promise<'created' | 'exists' | 'conflict'> {
    this.db.check(options)
    checkString(record.clientId, 'clientId')
    checkString(record.userId, 'userId')
    checkString(record.deviceId, 'deviceId')
    checkString(record.ciphersuite, 'ciphersuite')
    checkBytes(record.signaturePublicKey, 'signaturePublicKey')
    checkInteger(record.registeredAt, 'registeredAt')
    return this.db.transaction('registerIdentity', options, async (c) => {
      const inserted = await c.query(
        `INSERT INTO ${this.s}.identities (client_id, user_id, device_id, signature_public_key, ciphersuite, registered_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client_id) DO NOTHING`,
        [record.clientId, record.userId, record.deviceId, bytesIn(record.signaturePublicKey), record.ciphersuite, record.registeredAt]
      )
      if (inserted.rowCount === 1) return 'created'
      const existing = await c.query<IdentityRow>(`SELECT signature_public_key FROM ${this.s}.identities WHERE client_id = $1`, [record.clientId])
      const row = existing.rows[0]
      return row !== undefined && equalBytes(row.signature_public_key, record.signaturePublicKey) ? 'exists' : 'conflict'
    })
  }

  async getIdentity(clientId: ClientId, options?: AbortOptions): Promise<IdentityRecord | undefined> {
    const rows = await this.db.query<IdentityRow>('getIdentity', options, `SELECT * FROM ${this.s}.identities WHERE client_id = $1`, [clientId])
    return rows[0] === undefined ? undefined : identityOut(rows[0])
  }

  async listDevices(userId: string, options?: AbortOptions): Promise<IdentityRecord[]> {
    const rows = await this.db.query<IdentityRow>('listDevices', options, `SELECT * FROM ${this.s}.identities WHERE user_id = $1 ORDER BY client_id COLLATE "C"`, [userId])
    return rows.map(identityOut)
  }

  /** Serialize every KeyPackage change of one client, across connections and processes. */
  private lockClientKeyPackages(c: Queryable, clientId: ClientId): Promise<unknown> {
    return c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mls-kp:${this.s}:${clientId}`])
  }

  private async rememberRef(c: Queryable, ref: string): Promise<boolean> {
    const r = await c.query(`INSERT INTO ${this.s}.known_key_package_refs (ref) VALUES ($1) ON CONFLICT (ref) DO NOTHING`, [ref])
    return r.rowCount === 1
  }

  async addKeyPackages(clientId: ClientId, records: readonly KeyPackageRecord[], lastResort: KeyPackageRecord | undefined, options?: AbortOptions): Promise<void> {
    this.db.check(options)
    checkString(clientId, 'clientId')
    for (const r of records) checkKeyPackage(r)
    if (lastResort !== undefined) checkKeyPackage(lastResort)
    const pool = records.map((r) => ({ ref: r.ref, keyPackage: bytesIn(r.keyPackage), notAfter: r.notAfter }))
    const last = lastResort === undefined ? undefined : { ref: lastResort.ref, keyPackage: bytesIn(lastResort.keyPackage), notAfter: lastResort.notAfter }
    await this.db.transaction('addKeyPackages', options, async (c) => {
      await this.lockClientKeyPackages(c, clientId)
      for (const r of pool) {
        if (!(await this.rememberRef(c, r.ref))) continue
        await c.query(`INSERT INTO ${this.s}.key_packages (ref, client_id, key_package, not_after) VALUES ($1, $2, $3, $4)`, [r.ref, clientId, r.keyPackage, r.notAfter])
      }
      if (last === undefined || !(await this.rememberRef(c, last.ref))) return
      await c.query(`DELETE FROM ${this.s}.last_resort_key_packages WHERE client_id = $1`, [clientId])
      await c.query(`INSERT INTO ${this.s}.last_resort_key_packages (client_id, ref, key_package, not_after) VALUES ($1, $2, $3, $4)`, [
        clientId,
        last.ref,
        last.keyPackage,
        last.notAfter
      ])
    })
  }

  async consumeKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined> {
    this.db.check(options)
    if (typeof nowSeconds !== 'number' || Number.isNaN(nowSeconds)) throw invalid('nowSeconds must be a number')
    const now = Math.min(Math.floor(nowSeconds), Number.MAX_SAFE_INTEGER)
    return this.db.transaction('consumeKeyPackage', options, async (c) => {
      await this.lockClientKeyPackages(c, clientId)
      await c.query(`DELETE FROM ${this.s}.key_packages WHERE client_id = $1 AND not_after < $2`, [clientId, now])
      const taken = await c.query<KeyPackageRow>(
        `DELETE FROM ${this.s}.key_packages WHERE id = (SELECT id FROM ${this.s}.key_packages WHERE client_id = $1 ORDER BY id LIMIT 1)
         RETURNING ref, key_package, not_after`,
        [clientId]
      )
      let row = taken.rows[0]
      let lastResort = false
      if (row === undefined) {
        const last = await c.query<KeyPackageRow>(`SELECT ref, key_package, not_after FROM ${this.s}.last_resort_key_packages WHERE client_id = $1`, [clientId])
        row = last.rows[0]
        if (row === undefined || Number(row.not_after) < nowSeconds) return undefined
        lastResort = true
      }
      await c.query(
        `INSERT INTO ${this.s}.served_key_packages (ref, client_id) VALUES ($1, $2) ON CONFLICT (ref) DO UPDATE SET client_id = excluded.client_id`,
        [row.ref, clientId]
      )
      return { ref: row.ref, clientId, keyPackage: bytesOut(row.key_package), lastResort, notAfter: Number(row.not_after) }
    })
  }

  async countKeyPackages(clientId: ClientId, options?: AbortOptions): Promise<{ oneTime: number; lastResort: boolean }> {
    const rows = await this.db.query<{ pool: string; last: string }>(
      'countKeyPackages',
      options,
      `SELECT (SELECT count(*) FROM ${this.s}.key_packages WHERE client_id = $1) AS pool,
              (SELECT count(*) FROM ${this.s}.last_resort_key_packages WHERE client_id = $1) AS last`,
      [clientId]
    )
    return { oneTime: Number(rows[0]?.pool ?? 0), lastResort: Number(rows[0]?.last ?? 0) > 0 }
  }

  async lookupServedKeyPackage(ref: string, options?: AbortOptions): Promise<ClientId | undefined> {
    const rows = await this.db.query<{ client_id: string }>('lookupServedKeyPackage', options, `SELECT client_id FROM ${this.s}.served_key_packages WHERE ref = $1`, [ref])
    return rows[0]?.client_id
  }

  async createGroup(group: NewGroupRecord, options?: AbortOptions): Promise<boolean> {
    this.db.check(options)
    checkString(group.groupId, 'groupId')
    checkEpoch(group.epoch, 'Group epoch')
    checkInteger(group.lastSeq, 'Group lastSeq')
    checkPublicState(group.publicState)
    const roster = rosterIn(group.roster)
    const access = accessIn(group.access)
    const publicState = group.publicState === undefined ? undefined : publicStateIn(group.publicState)
    return this.db.transaction('createGroup', options, async (c) => {
      const inserted = await c.query(
        `INSERT INTO ${this.s}.groups (group_id, epoch, last_seq, roster, access) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id) DO NOTHING RETURNING 1`,
        [group.groupId, group.epoch.toString(), group.lastSeq, JSON.stringify(roster), JSON.stringify(access)]
      )
      if (inserted.rowCount !== 1) return false
      if (publicState !== undefined) await this.writePublicState(c, group.groupId, publicState)
      return true
    })
  }

  private async writePublicState(c: Queryable, groupId: GroupIdHex, record: { epoch: string; state: Buffer; groupInfo: Buffer | null }): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.group_public_state (group_id, epoch, state, group_info) VALUES ($1, $2, $3, $4)
       ON CONFLICT (group_id) DO UPDATE SET epoch = excluded.epoch, state = excluded.state, group_info = excluded.group_info`,
      [groupId, record.epoch, record.state, record.groupInfo]
    )
  }

  async getPublicState(groupId: GroupIdHex, options?: AbortOptions): Promise<PublicStateRecord | undefined> {
    const rows = await this.db.query<{ epoch: string; state: Buffer; group_info: Buffer | null }>(
      'getPublicState',
      options,
      `SELECT epoch, state, group_info FROM ${this.s}.group_public_state WHERE group_id = $1`,
      [groupId]
    )
    const row = rows[0]
    if (row === undefined) return undefined
    return { epoch: BigInt(row.epoch), state: bytesOut(row.state), groupInfo: row.group_info === null ? undefined : bytesOut(row.group_info) }
  }

  async listGroupsOf(clientId: ClientId, options?: AbortOptions): Promise<GroupIdHex[]> {
    this.db.check(options)
    checkString(clientId, 'clientId')
    const rows = await this.db.query<{ group_id: string }>(
      'listGroupsOf',
      options,
      `SELECT group_id FROM ${this.s}.groups WHERE roster @> $1::jsonb ORDER BY group_id`,
      [JSON.stringify([{ clientId }])]
    )
    return rows.map((r) => r.group_id)
  }

  async getGroup(groupId: GroupIdHex, options?: AbortOptions): Promise<GroupRecord | undefined> {
    const rows = await this.db.query<GroupRow>('getGroup', options, `SELECT epoch, last_seq, roster, access FROM ${this.s}.groups WHERE group_id = $1`, [groupId])
    const row = rows[0]
    if (row === undefined) return undefined
    return { groupId, epoch: BigInt(row.epoch), lastSeq: Number(row.last_seq), roster: rosterIn(row.roster), access: accessIn(row.access) }
  }

  /** Lock the group's row for the rest of the transaction: appends to one group are serial across every instance. */
  private async lockGroup(c: Queryable, groupId: GroupIdHex): Promise<{ epoch: bigint; lastSeq: number }> {
    const rows = await c.query<GroupRow>(`SELECT epoch, last_seq FROM ${this.s}.groups WHERE group_id = $1 FOR UPDATE`, [groupId])
    const row = rows.rows[0]
    if (row === undefined) throw new StorageError('UNKNOWN_GROUP', `Unknown group ${groupId}`)
    return { epoch: BigInt(row.epoch), lastSeq: Number(row.last_seq) }
  }

  private async insertLog(c: Queryable, groupId: GroupIdHex, seq: number, entry: { kind: string; epoch: bigint; sender: string; message: Buffer; digest: string }): Promise<void> {
    await c.query(`INSERT INTO ${this.s}.log_entries (group_id, seq, kind, epoch, sender, message, digest) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
      groupId,
      seq,
      entry.kind,
      entry.epoch.toString(),
      entry.sender,
      entry.message,
      entry.digest
    ])
  }

  async appendCommit(
    groupId: GroupIdHex,
    commit: {
      expectedEpoch: bigint
      entry: NewLogEntry
      roster: readonly RosterEntry[]
      access: readonly AccessWindow[]
      welcomes: readonly { clientId: ClientId; welcome: Uint8Array }[]
      publicState?: PublicStateRecord
    },
    options?: AbortOptions
  ): Promise<AppendCommitResult> {
    this.db.check(options)
    checkLogEntry(commit.entry)
    checkPublicState(commit.publicState)
    const publicState = commit.publicState === undefined ? undefined : publicStateIn(commit.publicState)
    if (typeof commit.expectedEpoch !== 'bigint') throw invalid('expectedEpoch must be a bigint')
    const roster = rosterIn(commit.roster)
    accessIn(commit.access)
    for (const w of commit.welcomes) {
      checkString(w.clientId, 'Welcome clientId')
      checkBytes(w.welcome, 'welcome')
    }
    const entry = { ...commit.entry, message: bytesIn(commit.entry.message) }
    // One copy per distinct Welcome of the commit; each recipient's mailbox row refers to it.
    const { distinct, indexOf } = distinctBytes(commit.welcomes.map((w) => w.welcome))
    const copies = distinct.map(bytesIn)
    const welcomes = commit.welcomes.map((w, i) => ({ clientId: w.clientId, copy: indexOf[i] as number }))
    return this.db.transaction('appendCommit', options, async (c): Promise<AppendCommitResult> => {
      const group = await this.lockGroup(c, groupId)
      if (group.epoch !== commit.expectedEpoch) return { kind: 'conflict', epoch: group.epoch }
      const nextEpoch = commit.expectedEpoch + 1n
      checkEpoch(nextEpoch, 'The next epoch')
      const seq = group.lastSeq + 1
      await this.insertLog(c, groupId, seq, entry)
      const access = accessIn(commit.access, (n) => (n === -1 ? seq : n))
      await c.query(`UPDATE ${this.s}.groups SET epoch = $1, last_seq = $2, roster = $3, access = $4 WHERE group_id = $5`, [
        nextEpoch.toString(),
        seq,
        JSON.stringify(roster),
        JSON.stringify(access),
        groupId
      ])
      if (publicState !== undefined) await this.writePublicState(c, groupId, publicState)
      const welcomeSeqs = await this.insertWelcomes(c, groupId, seq, copies, welcomes)
      return { kind: 'accepted', seq, welcomeSeqs }
    })
  }

  /**
   * A commit's Welcomes in a number of statements that does not grow with its
   * recipients: one per distinct copy (nearly always one), one that advances
   * every recipient's mailbox head by its count (locked in client id order, so
   * two commits welcoming the same clients cannot deadlock), one for the
   * mailbox rows. A client's seqs follow the order of its Welcomes in the commit.
   */
  private async insertWelcomes(
    c: Queryable,
    groupId: GroupIdHex,
    seq: number,
    copies: readonly Buffer[],
    welcomes: readonly { clientId: ClientId; copy: number }[]
  ): Promise<{ clientId: ClientId; seq: number }[]> {
    if (welcomes.length === 0) return []
    // A commit's Welcomes are nearly always one copy for every recipient.
    const ids: string[] = []
    for (const welcome of copies) {
      const inserted = await c.query<{ id: string }>(
        `INSERT INTO ${this.s}.welcome_messages (group_id, commit_seq, welcome) VALUES ($1, $2, $3) RETURNING id`,
        [groupId, seq, welcome]
      )
      ids.push(inserted.rows[0]?.id as string)
    }
    const counts = new Map<ClientId, number>()
    for (const w of welcomes) counts.set(w.clientId, (counts.get(w.clientId) ?? 0) + 1)
    const clients = [...counts.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    const heads = await c.query<{ client_id: string; last_seq: string }>(
      `INSERT INTO ${this.s}.mailbox_heads (client_id, last_seq)
       SELECT client_id, n FROM unnest($1::text[], $2::bigint[]) AS t(client_id, n) ORDER BY client_id
       ON CONFLICT (client_id) DO UPDATE SET last_seq = ${this.s}.mailbox_heads.last_seq + EXCLUDED.last_seq
       RETURNING client_id, last_seq`,
      [clients, clients.map((id) => counts.get(id) as number)]
    )
    // The first seq each client's Welcomes take in this commit.
    const next = new Map<ClientId, number>()
    for (const row of heads.rows) next.set(row.client_id, Number(row.last_seq) - (counts.get(row.client_id) as number) + 1)
    const welcomeSeqs = welcomes.map((w) => {
      const mailboxSeq = next.get(w.clientId)
      if (mailboxSeq === undefined) throw new StorageError('STORAGE_CORRUPT', `No mailbox head for ${w.clientId}`)
      next.set(w.clientId, mailboxSeq + 1)
      return { clientId: w.clientId, seq: mailboxSeq }
    })
    await c.query(
      `INSERT INTO ${this.s}.welcomes (client_id, seq, welcome_id) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])`,
      [welcomeSeqs.map((w) => w.clientId), welcomeSeqs.map((w) => w.seq), welcomes.map((w) => ids[w.copy] as string)]
    )
    return welcomeSeqs
  }

  async appendMessage(groupId: GroupIdHex, entry: NewLogEntry, options?: AbortOptions): Promise<AppendMessageResult> {
    this.db.check(options)
    checkLogEntry(entry)
    const copy = { ...entry, message: bytesIn(entry.message) }
    return this.db.transaction('appendMessage', options, async (c): Promise<AppendMessageResult> => {
      const group = await this.lockGroup(c, groupId)
      const seen = await c.query(`SELECT 1 FROM ${this.s}.log_entries WHERE group_id = $1 AND digest = $2`, [groupId, entry.digest])
      if (seen.rowCount !== null && seen.rowCount > 0) return { kind: 'duplicate' }
      // Under the group row's lock, which appendCommit holds while it replaces the roster: the roster read is current.
      const member = await c.query(`SELECT 1 FROM ${this.s}.groups WHERE group_id = $1 AND roster @> $2::jsonb`, [groupId, JSON.stringify([{ clientId: entry.sender }])])
      if (member.rowCount === null || member.rowCount === 0) return { kind: 'not-a-member' }
      const seq = group.lastSeq + 1
      await this.insertLog(c, groupId, seq, copy)
      await c.query(`UPDATE ${this.s}.groups SET last_seq = $1 WHERE group_id = $2`, [seq, groupId])
      return { kind: 'accepted', seq }
    })
  }

  async appendProposal(
    groupId: GroupIdHex,
    proposal: { expectedEpoch: bigint; expectedState?: Uint8Array; entry: NewLogEntry; publicState: PublicStateRecord },
    options?: AbortOptions
  ): Promise<AppendProposalResult> {
    this.db.check(options)
    const expectedState = proposal.expectedState
    if (expectedState !== undefined && !(expectedState instanceof Uint8Array)) throw invalid('expectedState must be a Uint8Array')
    checkLogEntry(proposal.entry)
    if (proposal.publicState === undefined) throw invalid('A proposal comes with the public state that holds it')
    checkPublicState(proposal.publicState)
    if (typeof proposal.expectedEpoch !== 'bigint') throw invalid('expectedEpoch must be a bigint')
    const entry = { ...proposal.entry, message: bytesIn(proposal.entry.message) }
    const publicState = publicStateIn(proposal.publicState)
    return this.db.transaction('appendProposal', options, async (c): Promise<AppendProposalResult> => {
      const group = await this.lockGroup(c, groupId)
      if (group.epoch !== proposal.expectedEpoch) return { kind: 'conflict', epoch: group.epoch }
      if (expectedState !== undefined) {
        // The group row is locked (lockGroup), so the state cannot change before this transaction ends.
        const stored = await c.query<{ same: boolean }>(`SELECT state = $2 AS same FROM ${this.s}.group_public_state WHERE group_id = $1`, [groupId, bytesIn(expectedState)])
        if (stored.rows[0]?.same !== true) return { kind: 'conflict', epoch: group.epoch }
      }
      const seen = await c.query(`SELECT 1 FROM ${this.s}.log_entries WHERE group_id = $1 AND digest = $2`, [groupId, entry.digest])
      if (seen.rowCount !== null && seen.rowCount > 0) return { kind: 'duplicate' }
      const seq = group.lastSeq + 1
      await this.insertLog(c, groupId, seq, entry)
      await c.query(`UPDATE ${this.s}.groups SET last_seq = $1 WHERE group_id = $2`, [seq, groupId])
      await this.writePublicState(c, groupId, publicState)
      return { kind: 'accepted', seq }
    })
  }

  async serveLastResortKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined> {
    this.db.check(options)
    if (typeof nowSeconds !== 'number' || Number.isNaN(nowSeconds)) throw invalid('nowSeconds must be a number')
    return this.db.transaction('serveLastResortKeyPackage', options, async (c) => {
      await this.lockClientKeyPackages(c, clientId)
      const last = await c.query<KeyPackageRow>(`SELECT ref, key_package, not_after FROM ${this.s}.last_resort_key_packages WHERE client_id = $1`, [clientId])
      const row = last.rows[0]
      if (row === undefined || Number(row.not_after) < nowSeconds) return undefined
      await c.query(
        `INSERT INTO ${this.s}.served_key_packages (ref, client_id) VALUES ($1, $2) ON CONFLICT (ref) DO UPDATE SET client_id = excluded.client_id`,
        [row.ref, clientId]
      )
      return { ref: row.ref, clientId, keyPackage: bytesOut(row.key_package), lastResort: true, notAfter: Number(row.not_after) }
    })
  }

  async readDeviceList(userId: string, options?: AbortOptions): Promise<Uint8Array[]> {
    const rows = await this.db.query<{ entry: Buffer }>(
      'readDeviceList',
      options,
      `SELECT entry FROM ${this.s}.device_list_entries WHERE user_id = $1 ORDER BY position`,
      [userId]
    )
    return rows.map((r) => bytesOut(r.entry))
  }

  async appendDeviceListEntry(userId: string, expectedLength: number, entry: Uint8Array, options?: AbortOptions): Promise<'appended' | 'conflict'> {
    this.db.check(options)
    checkString(userId, 'userId')
    checkInteger(expectedLength, 'expectedLength')
    checkBytes(entry, 'device-list entry')
    const copy = bytesIn(entry)
    return this.db.transaction('appendDeviceListEntry', options, async (c) => {
      // One writer per user list at a time, across connections and processes: the count and the insert are one step.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mls-device-list:${this.s}:${userId}`])
      const count = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.s}.device_list_entries WHERE user_id = $1`, [userId])
      if (Number(count.rows[0]?.n ?? 0) !== expectedLength) return 'conflict'
      await c.query(`INSERT INTO ${this.s}.device_list_entries (user_id, position, entry) VALUES ($1, $2, $3)`, [userId, expectedLength + 1, copy])
      return 'appended'
    })
  }

  async readLog(groupId: GroupIdHex, afterSeq: number, limit: number, untilSeq?: number, options?: AbortOptions): Promise<LogRecord[]> {
    this.db.check(options)
    if (!(limit > 0)) return []
    const rows = await this.db.query<{ seq: string; kind: 'commit' | 'application' | 'proposal'; epoch: string; sender: string; message: Buffer; digest: string }>(
      'readLog',
      options,
      `SELECT seq, kind, epoch, sender, message, digest FROM ${this.s}.log_entries
       WHERE group_id = $1 AND seq > $2 AND seq <= $3 AND (kind <> 'application' OR octet_length(message) > 0) ORDER BY seq LIMIT $4`,
      [groupId, afterSeq, untilSeq ?? Number.MAX_SAFE_INTEGER, sqlLimit(limit)]
    )
    return rows.map((r) => ({ seq: Number(r.seq), kind: r.kind, epoch: BigInt(r.epoch), sender: r.sender, message: bytesOut(r.message), digest: r.digest }))
  }

  async pruneLogs(pruning: LogPruning, options?: AbortOptions): Promise<{ deleted: number }> {
    this.db.check(options)
    const s = this.s
    return this.db.transaction('pruneLogs', options, async (c) => {
      // One pruning at a time across instances (each locks many group rows).
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mls-prune-logs:${s}`])
      // A deleted message keeps its row (seq, digest: a replay is still refused) with no bytes, until its epoch is old.
      // Cursors of clients that are no longer members hold nothing back.
      await c.query(
        `DELETE FROM ${s}.fetch_cursors AS c USING ${s}.groups AS g WHERE c.group_id = g.group_id
           AND NOT g.access @> jsonb_build_array(jsonb_build_object('clientId', c.client_id, 'untilSeq', null))`
      )
      const byHardLimit = await c.query(
        `UPDATE ${s}.log_entries SET message = ''::bytea WHERE kind = 'application' AND octet_length(message) > 0 AND appended_at < $1`,
        [Math.floor(pruning.hardLimitBeforeMs ?? 0)]
      )
      // The age and count rules stop at each group's fetch floor: the lowest cursor of its current members.
      const floors = `WITH floors AS MATERIALIZED (
        SELECT g.group_id, coalesce((
          SELECT min(greatest((w.value ->> 'fromSeq')::bigint, coalesce(fc.seq, 0))) FROM jsonb_array_elements(g.access) AS w (value)
            LEFT JOIN ${s}.fetch_cursors AS fc ON fc.group_id = g.group_id AND fc.client_id = w.value ->> 'clientId'
          WHERE w.value -> 'untilSeq' = 'null'::jsonb), g.last_seq) AS floor
        FROM ${s}.groups AS g)`
      const byAge = await c.query(
        `${floors} UPDATE ${s}.log_entries AS l SET message = ''::bytea FROM floors AS f WHERE f.group_id = l.group_id
           AND l.kind = 'application' AND octet_length(l.message) > 0 AND l.appended_at < $1 AND l.seq <= f.floor`,
        [Math.floor(pruning.appendedBeforeMs)]
      )
      const byCount = await c.query(
        `${floors} UPDATE ${s}.log_entries AS l SET message = ''::bytea FROM floors AS f WHERE f.group_id = l.group_id
           AND l.kind = 'application' AND octet_length(l.message) > 0 AND l.seq <= f.floor AND l.seq <= (
           SELECT newer.seq FROM ${s}.log_entries AS newer WHERE newer.group_id = l.group_id AND newer.kind = 'application'
           ORDER BY newer.seq DESC LIMIT 1 OFFSET $1)`,
        [Math.min(Math.max(0, Math.floor(pruning.keepMessages)), Number.MAX_SAFE_INTEGER)]
      )
      await c.query(
        `UPDATE ${s}.groups AS g SET log_retained_from = t.last + 1
         FROM (SELECT group_id, max(seq) AS last FROM ${s}.log_entries WHERE kind = 'application' AND octet_length(message) = 0 GROUP BY group_id) AS t
         WHERE t.group_id = g.group_id AND g.log_retained_from <= t.last`
      )
      await c.query(
        `DELETE FROM ${s}.log_entries AS l USING ${s}.groups AS g
         WHERE l.group_id = g.group_id AND l.kind = 'application' AND octet_length(l.message) = 0 AND l.epoch < g.epoch - $1`,
        [Math.max(0, Math.floor(pruning.keepDigestsForEpochs))]
      )
      return { deleted: (byHardLimit.rowCount ?? 0) + (byAge.rowCount ?? 0) + (byCount.rowCount ?? 0) }
    })
  }

  async logRetainedFrom(groupId: GroupIdHex, options?: AbortOptions): Promise<number | undefined> {
    this.db.check(options)
    const rows = await this.db.query<{ log_retained_from: string }>('logRetainedFrom', options, `SELECT log_retained_from FROM ${this.s}.groups WHERE group_id = $1`, [groupId])
    return rows[0] === undefined ? undefined : Number(rows[0].log_retained_from)
  }

  async advanceFetchCursors(cursors: readonly FetchCursor[], options?: AbortOptions): Promise<void> {
    this.db.check(options)
    for (const c of cursors) {
      checkString(c.groupId, 'Fetch cursor groupId')
      checkString(c.clientId, 'Fetch cursor clientId')
      checkInteger(c.seq, 'Fetch cursor seq')
      if (c.seq < 0) throw invalid('A fetch cursor seq is a non-negative integer')
    }
    if (cursors.length === 0) return
    // Rows are written in key order, so two batches from two instances cannot deadlock.
    const ordered = [...cursors].sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0))
    await this.db.transaction('advanceFetchCursors', options, async (c) => {
      for (const cursor of ordered) {
        await c.query(
          `INSERT INTO ${this.s}.fetch_cursors (group_id, client_id, seq)
             SELECT g.group_id, $2, least($3::bigint, g.last_seq) FROM ${this.s}.groups AS g
             WHERE g.group_id = $1 AND g.access @> jsonb_build_array(jsonb_build_object('clientId', $2::text, 'untilSeq', null))
           ON CONFLICT (group_id, client_id) DO UPDATE SET seq = greatest(${this.s}.fetch_cursors.seq, excluded.seq)`,
          [cursor.groupId, cursor.clientId, cursor.seq]
        )
      }
    })
  }

  async readFetchCursors(groupId: GroupIdHex, options?: AbortOptions): Promise<FetchCursor[]> {
    this.db.check(options)
    const rows = await this.db.query<{ client_id: string; seq: string }>(
      'readFetchCursors',
      options,
      `SELECT w.value ->> 'clientId' AS client_id, greatest((w.value ->> 'fromSeq')::bigint, coalesce(fc.seq, 0)) AS seq
         FROM ${this.s}.groups AS g CROSS JOIN LATERAL jsonb_array_elements(g.access) WITH ORDINALITY AS w (value, position)
         LEFT JOIN ${this.s}.fetch_cursors AS fc ON fc.group_id = g.group_id AND fc.client_id = w.value ->> 'clientId'
       WHERE g.group_id = $1 AND w.value -> 'untilSeq' = 'null'::jsonb ORDER BY w.position`,
      [groupId]
    )
    return rows.map((r) => ({ groupId, clientId: r.client_id, seq: Number(r.seq) }))
  }

  async pruneWelcomes(pruning: WelcomePruning, options?: AbortOptions): Promise<{ deleted: number }> {
    this.db.check(options)
    for (const value of [pruning.appendedBeforeMs, pruning.keepWelcomes]) {
      if (typeof value !== 'number' || Number.isNaN(value)) throw invalid('Welcome pruning limits are numbers')
    }
    const s = this.s
    const appendedBefore = Math.floor(Math.min(Math.max(pruning.appendedBeforeMs, 0), Number.MAX_SAFE_INTEGER))
    const keep = Math.floor(Math.min(Math.max(pruning.keepWelcomes, 0), Number.MAX_SAFE_INTEGER))
    return this.db.transaction('pruneWelcomes', options, async (c) => {
      // Mailbox rows by the age of their copy and by position behind the mailbox's newest seq; then every copy no row refers to.
      // A commit appending concurrently inserts its copy and rows in one transaction, invisible here until both are there.
      const byAge = await c.query(
        `DELETE FROM ${s}.welcomes AS w USING ${s}.welcome_messages AS m WHERE m.id = w.welcome_id AND m.appended_at < $1`,
        [appendedBefore]
      )
      const byCount = await c.query(
        `DELETE FROM ${s}.welcomes AS w USING ${s}.mailbox_heads AS h WHERE h.client_id = w.client_id AND w.seq <= h.last_seq - $1`,
        [keep]
      )
      await c.query(`DELETE FROM ${s}.welcome_messages AS m WHERE NOT EXISTS (SELECT 1 FROM ${s}.welcomes AS w WHERE w.welcome_id = m.id)`)
      return { deleted: (byAge.rowCount ?? 0) + (byCount.rowCount ?? 0) }
    })
  }

  async readWelcomes(clientId: ClientId, afterSeq: number, limit: number, options?: AbortOptions): Promise<WelcomeRecord[]> {
    this.db.check(options)
    if (!(limit > 0)) return []
    const rows = await this.db.query<{ seq: string; group_id: string; welcome: Buffer; commit_seq: string }>(
      'readWelcomes',
      options,
      `SELECT w.seq, m.group_id, m.welcome, m.commit_seq FROM ${this.s}.welcomes AS w JOIN ${this.s}.welcome_messages AS m ON m.id = w.welcome_id
         WHERE w.client_id = $1 AND w.seq > $2 ORDER BY w.seq LIMIT $3`,
      [clientId, afterSeq, sqlLimit(limit)]
    )
    return rows.map((r) => ({ seq: Number(r.seq), groupId: r.group_id, welcome: bytesOut(r.welcome), commitSeq: Number(r.commit_seq) }))
  }

  close(): Promise<void> {
    return this.db.close()
  }
}

/**
 * A server store on PostgreSQL (`pg`). Any number of server processes may
 * share one database: each method is one transaction; appends to a group lock
 * its row (`SELECT … FOR UPDATE`), so the epoch check and the append are one
 * step and each group has one total order; a client's KeyPackage changes are
 * serialized by a transaction-scoped advisory lock, so a one-time KeyPackage
 * is served once. Creates (and migrates) its tables in `schema` on open.
 * PostgreSQL cannot overwrite deleted rows in place: see docs/storage.md.
 */
export async function openPostgresServerStore(init: PostgresServerStoreInit): Promise<ServerStore> {
  const schema = checkIdentifier(init.schema ?? 'mls', 'schema')
  const db = new Database(init)
  try {
    await migrate(db, schema)
  } catch (error) {
    await db.close()
    throw error
  }
  return new PostgresServerStore(db, schema, init.name ?? schema)
}
