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
import type { Connection, SqliteStoreInit } from './database.js'
import { SqliteStoreBase, bytesOut, invalid, openDatabase } from './database.js'
import { NOW_MS, SERVER_SCHEMA } from './server-schema.js'

/** Options of `sqliteServerStore()`: the file path and SQLite settings (see `SqliteStoreInit`). */
export type SqliteServerStoreInit = SqliteStoreInit

type NewLogEntry = Omit<LogRecord, 'seq'>

interface IdentityRow {
  client_id: string
  user_id: string
  device_id: string
  signature_public_key: Buffer
  ciphersuite: string
  registered_at: number
}

interface KeyPackageRow {
  id: number
  ref: string
  key_package: Buffer
  not_after: number
}

interface LogRow {
  seq: bigint
  kind: 'commit' | 'application' | 'proposal'
  epoch: bigint
  sender: string
  message: Buffer
  digest: string
}

interface WelcomeRow {
  seq: number
  group_id: string
  welcome: Buffer
  commit_seq: number
}

const MAX_EPOCH = (1n << 63n) - 1n

function checkBytes(value: unknown, what: string): void {
  if (!(value instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`)
}

/**
 * Each group's fetch floor, for retention: the lowest fetch cursor of its
 * current members (open access windows; a member without a cursor row counts
 * from its window's `from_seq`), or `last_seq` when it has no members.
 */
const FETCH_FLOORS = `WITH floors AS MATERIALIZED (
  SELECT g.group_id AS group_id, coalesce((
    SELECT min(max(a.from_seq, coalesce(c.seq, 0))) FROM group_access AS a
      LEFT JOIN fetch_cursors AS c ON c.group_id = a.group_id AND c.client_id = a.client_id
    WHERE a.group_id = g.group_id AND a.until_seq IS NULL), g.last_seq) AS floor
  FROM groups AS g)`

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

function checkRoster(roster: readonly RosterEntry[]): void {
  for (const e of roster) {
    checkInteger(e.leafIndex, 'Roster leafIndex')
    checkString(e.clientId, 'Roster clientId')
  }
}

function checkAccess(access: readonly AccessWindow[]): void {
  for (const w of access) {
    checkString(w.clientId, 'Access clientId')
    checkInteger(w.fromSeq, 'Access fromSeq')
    if (w.untilSeq !== null) checkInteger(w.untilSeq, 'Access untilSeq')
  }
}

function checkPublicState(r: PublicStateRecord | undefined): void {
  if (r === undefined) return
  checkEpoch(r.epoch, 'Public state epoch')
  checkBytes(r.state, 'Public state')
  if (r.groupInfo !== undefined) checkBytes(r.groupInfo, 'GroupInfo')
}

function checkKeyPackage(r: KeyPackageRecord): void {
  checkString(r.ref, 'KeyPackage ref')
  checkBytes(r.keyPackage, 'keyPackage')
  checkInteger(r.notAfter, 'KeyPackage notAfter')
}

/** A SQL LIMIT for a caller's `limit`: at least 1 (callers return `[]` for `limit <= 0`), -1 for no limit. */
function sqlLimit(limit: number): number {
  return Number.isFinite(limit) ? Math.ceil(limit) : -1
}

function prepareStatements(db: Connection) {
  return {
    insertIdentity: db.prepare(
      `INSERT INTO identities (client_id, user_id, device_id, signature_public_key, ciphersuite, registered_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING`
    ),
    getIdentity: db.prepare<[string], IdentityRow>('SELECT * FROM identities WHERE client_id = ?'),
    listDevices: db.prepare<[string], IdentityRow>('SELECT * FROM identities WHERE user_id = ? ORDER BY client_id'),

    rememberRef: db.prepare<[string]>('INSERT INTO known_key_package_refs (ref) VALUES (?) ON CONFLICT (ref) DO NOTHING'),
    insertKeyPackage: db.prepare<[string, string, Uint8Array, number]>(
      'INSERT INTO key_packages (ref, client_id, key_package, not_after) VALUES (?, ?, ?, ?)'
    ),
    deleteLastResort: db.prepare<[string]>('DELETE FROM last_resort_key_packages WHERE client_id = ?'),
    insertLastResort: db.prepare<[string, string, Uint8Array, number]>(
      'INSERT INTO last_resort_key_packages (client_id, ref, key_package, not_after) VALUES (?, ?, ?, ?)'
    ),
    dropExpired: db.prepare<[string, number]>('DELETE FROM key_packages WHERE client_id = ? AND not_after < ?'),
    takeOldest: db.prepare<[string], KeyPackageRow>(
      `DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages WHERE client_id = ? ORDER BY id LIMIT 1)
       RETURNING id, ref, key_package, not_after`
    ),
    getLastResort: db.prepare<[string], KeyPackageRow>('SELECT 0 AS id, ref, key_package, not_after FROM last_resort_key_packages WHERE client_id = ?'),
    recordServed: db.prepare<[string, string]>(
      'INSERT INTO served_key_packages (ref, client_id) VALUES (?, ?) ON CONFLICT (ref) DO UPDATE SET client_id = excluded.client_id'
    ),
    countPool: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM key_packages WHERE client_id = ?'),
    hasLastResort: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM last_resort_key_packages WHERE client_id = ?'),
    lookupServed: db.prepare<[string], { client_id: string }>('SELECT client_id FROM served_key_packages WHERE ref = ?'),

    putPublicState: db.prepare<[string, bigint, Uint8Array, Uint8Array | null]>(
      `INSERT INTO group_public_state (group_id, epoch, state, group_info) VALUES (?, ?, ?, ?)
       ON CONFLICT (group_id) DO UPDATE SET epoch = excluded.epoch, state = excluded.state, group_info = excluded.group_info`
    ),
    getPublicState: db
      .prepare<[string], { epoch: bigint; state: Buffer; group_info: Buffer | null }>('SELECT epoch, state, group_info FROM group_public_state WHERE group_id = ?')
      .safeIntegers(true),
    insertGroup: db.prepare<[string, bigint, number]>(
      'INSERT INTO groups (group_id, epoch, last_seq) VALUES (?, ?, ?) ON CONFLICT (group_id) DO NOTHING'
    ),
    getGroup: db.prepare<[string], { epoch: bigint; last_seq: bigint }>('SELECT epoch, last_seq FROM groups WHERE group_id = ?').safeIntegers(true),
    listGroupsOf: db.prepare<[string], { group_id: string }>('SELECT DISTINCT group_id FROM group_roster WHERE client_id = ? ORDER BY group_id'),
    updateGroup: db.prepare<[bigint, number, string]>('UPDATE groups SET epoch = ?, last_seq = ? WHERE group_id = ?'),
    setLastSeq: db.prepare<[number, string]>('UPDATE groups SET last_seq = ? WHERE group_id = ?'),
    getRoster: db.prepare<[string], { leaf_index: number; client_id: string }>(
      'SELECT leaf_index, client_id FROM group_roster WHERE group_id = ? ORDER BY position'
    ),
    deleteRoster: db.prepare<[string]>('DELETE FROM group_roster WHERE group_id = ?'),
    inRoster: db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM group_roster WHERE group_id = ? AND client_id = ? LIMIT 1'),
    insertRoster: db.prepare<[string, number, number, string]>(
      'INSERT INTO group_roster (group_id, position, leaf_index, client_id) VALUES (?, ?, ?, ?)'
    ),
    getAccess: db.prepare<[string], { client_id: string; from_seq: number; until_seq: number | null }>(
      'SELECT client_id, from_seq, until_seq FROM group_access WHERE group_id = ? ORDER BY position'
    ),
    deleteAccess: db.prepare<[string]>('DELETE FROM group_access WHERE group_id = ?'),
    insertAccess: db.prepare<[string, number, string, number, number | null]>(
      'INSERT INTO group_access (group_id, position, client_id, from_seq, until_seq) VALUES (?, ?, ?, ?, ?)'
    ),

    hasDigest: db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM log_entries WHERE group_id = ? AND digest = ?'),
    insertLog: db.prepare<[string, number, string, bigint, string, Uint8Array, string]>(
      `INSERT INTO log_entries (group_id, seq, kind, epoch, sender, message, digest, appended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ${NOW_MS})`
    ),
    // Retention: a deleted message keeps its row (seq, digest: a replay is still refused) with no bytes, until its epoch is old.
    // The age and count rules stop at the group's fetch floor (the lowest cursor of its current members); the hard limit does not.
    pruneByAge: db.prepare<[number]>(
      `${FETCH_FLOORS} UPDATE log_entries SET message = x'' WHERE kind = 'application' AND length(message) > 0 AND appended_at < ?
         AND seq <= (SELECT floor FROM floors WHERE floors.group_id = log_entries.group_id)`
    ),
    pruneByCount: db.prepare<[number]>(
      `${FETCH_FLOORS} UPDATE log_entries SET message = x'' WHERE kind = 'application' AND length(message) > 0 AND seq <= (
         SELECT newer.seq FROM log_entries AS newer WHERE newer.group_id = log_entries.group_id AND newer.kind = 'application'
         ORDER BY newer.seq DESC LIMIT 1 OFFSET ?)
         AND seq <= (SELECT floor FROM floors WHERE floors.group_id = log_entries.group_id)`
    ),
    pruneByHardLimit: db.prepare<[number]>(
      "UPDATE log_entries SET message = x'' WHERE kind = 'application' AND length(message) > 0 AND appended_at < ?"
    ),
    dropStaleCursors: db.prepare(
      `DELETE FROM fetch_cursors WHERE NOT EXISTS (SELECT 1 FROM group_access AS a
         WHERE a.group_id = fetch_cursors.group_id AND a.client_id = fetch_cursors.client_id AND a.until_seq IS NULL)`
    ),
    advanceCursor: db.prepare<[number, string, string]>(
      `INSERT INTO fetch_cursors (group_id, client_id, seq)
         SELECT a.group_id, a.client_id, min(?, g.last_seq) FROM group_access AS a JOIN groups AS g ON g.group_id = a.group_id
         WHERE a.group_id = ? AND a.client_id = ? AND a.until_seq IS NULL LIMIT 1
       ON CONFLICT (group_id, client_id) DO UPDATE SET seq = max(seq, excluded.seq)`
    ),
    readCursors: db.prepare<[string], { client_id: string; seq: number }>(
      `SELECT a.client_id AS client_id, max(a.from_seq, coalesce(c.seq, 0)) AS seq FROM group_access AS a
         LEFT JOIN fetch_cursors AS c ON c.group_id = a.group_id AND c.client_id = a.client_id
       WHERE a.group_id = ? AND a.until_seq IS NULL ORDER BY a.position`
    ),
    moveRetainedFrom: db.prepare(
      `UPDATE groups SET log_retained_from = (
         SELECT max(seq) + 1 FROM log_entries WHERE log_entries.group_id = groups.group_id AND kind = 'application' AND length(message) = 0)
       WHERE log_retained_from <= (
         SELECT max(seq) FROM log_entries WHERE log_entries.group_id = groups.group_id AND kind = 'application' AND length(message) = 0)`
    ),
    forgetDigests: db.prepare<[number]>(
      `DELETE FROM log_entries WHERE kind = 'application' AND length(message) = 0
         AND epoch < (SELECT groups.epoch FROM groups WHERE groups.group_id = log_entries.group_id) - ?`
    ),
    getRetainedFrom: db.prepare<[string], { log_retained_from: number }>('SELECT log_retained_from FROM groups WHERE group_id = ?'),
    readLog: db
      .prepare<[string, number, number, number], LogRow>(
        "SELECT seq, kind, epoch, sender, message, digest FROM log_entries WHERE group_id = ? AND seq > ? AND seq <= ? AND (kind <> 'application' OR length(message) > 0) ORDER BY seq LIMIT ?"
      )
      .safeIntegers(true),
    insertWelcomeMessage: db.prepare<[string, number, Uint8Array]>(
      `INSERT INTO welcome_messages (group_id, commit_seq, welcome, appended_at) VALUES (?, ?, ?, ${NOW_MS})`
    ),
    nextWelcomeSeq: db.prepare<[string], { last_seq: number }>(
      `INSERT INTO welcome_mailboxes (client_id, last_seq) VALUES (?, 1)
         ON CONFLICT (client_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`
    ),
    insertWelcome: db.prepare<[string, number, number | bigint]>('INSERT INTO welcomes (client_id, seq, welcome_id) VALUES (?, ?, ?)'),
    // Welcome retention: mailbox rows by age (of their copy) and by position behind the mailbox's newest seq; then every copy no row refers to.
    pruneWelcomesByAge: db.prepare<[number]>(
      'DELETE FROM welcomes WHERE welcome_id IN (SELECT id FROM welcome_messages WHERE appended_at < ?)'
    ),
    pruneWelcomesByCount: db.prepare<[number]>(
      'DELETE FROM welcomes WHERE seq <= (SELECT m.last_seq FROM welcome_mailboxes AS m WHERE m.client_id = welcomes.client_id) - ?'
    ),
    dropUnreferencedWelcomes: db.prepare(
      'DELETE FROM welcome_messages WHERE NOT EXISTS (SELECT 1 FROM welcomes AS w WHERE w.welcome_id = welcome_messages.id)'
    ),
    readDeviceList: db.prepare<[string], { entry: Buffer }>('SELECT entry FROM device_list_entries WHERE user_id = ? ORDER BY position'),
    countDeviceList: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM device_list_entries WHERE user_id = ?'),
    insertDeviceListEntry: db.prepare<[string, number, Uint8Array]>('INSERT INTO device_list_entries (user_id, position, entry) VALUES (?, ?, ?)'),
    readWelcomes: db.prepare<[string, number, number], WelcomeRow>(
      `SELECT w.seq AS seq, m.group_id AS group_id, m.welcome AS welcome, m.commit_seq AS commit_seq
         FROM welcomes AS w JOIN welcome_messages AS m ON m.id = w.welcome_id WHERE w.client_id = ? AND w.seq > ? ORDER BY w.seq LIMIT ?`
    )
  }
}

const identityOut = (row: IdentityRow): IdentityRecord => ({
  clientId: row.client_id,
  userId: row.user_id,
  deviceId: row.device_id,
  signaturePublicKey: bytesOut(row.signature_public_key),
  ciphersuite: row.ciphersuite,
  registeredAt: row.registered_at
})

class SqliteServerStore extends SqliteStoreBase implements ServerStore {
  readonly specificationVersion = 'v1' as const
  private readonly sql: ReturnType<typeof prepareStatements>

  constructor(db: Connection, init: SqliteServerStoreInit) {
    super(db, init.path, `SqliteServerStore(${init.name ?? init.path})`)
    this.sql = prepareStatements(db)
  }

  async registerIdentity(record: IdentityRecord, options?: AbortOptions): Promise<'created' | 'exists' | 'conflict'> {
    return this.run('registerIdentity', options, (db) => {
      checkString(record.clientId, 'clientId')
      checkString(record.userId, 'userId')
      checkString(record.deviceId, 'deviceId')
      checkString(record.ciphersuite, 'ciphersuite')
      checkBytes(record.signaturePublicKey, 'signaturePublicKey')
      checkInteger(record.registeredAt, 'registeredAt')
      return db
        .transaction((): 'created' | 'exists' | 'conflict' => {
          const { changes } = this.sql.insertIdentity.run(
            record.clientId,
            record.userId,
            record.deviceId,
            record.signaturePublicKey,
            record.ciphersuite,
            record.registeredAt
          )
          if (changes === 1) return 'created'
          const existing = this.sql.getIdentity.get(record.clientId)
          return existing !== undefined && equalBytes(existing.signature_public_key, record.signaturePublicKey) ? 'exists' : 'conflict'
        })
        .immediate()
    })
  }

  async getIdentity(clientId: ClientId, options?: AbortOptions): Promise<IdentityRecord | undefined> {
    return this.run('getIdentity', options, () => {
      const row = this.sql.getIdentity.get(clientId)
      return row === undefined ? undefined : identityOut(row)
    })
  }

  async listDevices(userId: string, options?: AbortOptions): Promise<IdentityRecord[]> {
    return this.run('listDevices', options, () => this.sql.listDevices.all(userId).map(identityOut))
  }

  async addKeyPackages(
    clientId: ClientId,
    records: readonly KeyPackageRecord[],
    lastResort: KeyPackageRecord | undefined,
    options?: AbortOptions
  ): Promise<void> {
    return this.run('addKeyPackages', options, (db) => {
      checkString(clientId, 'clientId')
      for (const r of records) checkKeyPackage(r)
      if (lastResort !== undefined) checkKeyPackage(lastResort)
      const replaced = db
        .transaction((): boolean => {
          for (const r of records) {
            if (this.sql.rememberRef.run(r.ref).changes === 0) continue
            this.sql.insertKeyPackage.run(r.ref, clientId, r.keyPackage, r.notAfter)
          }
          if (lastResort === undefined || this.sql.rememberRef.run(lastResort.ref).changes === 0) return false
          const { changes } = this.sql.deleteLastResort.run(clientId)
          this.sql.insertLastResort.run(clientId, lastResort.ref, lastResort.keyPackage, lastResort.notAfter)
          return changes > 0
        })
        .immediate()
      if (replaced) this.requestTruncate()
    })
  }

  async consumeKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined> {
    return this.run('consumeKeyPackage', options, (db) => {
      if (typeof nowSeconds !== 'number' || Number.isNaN(nowSeconds)) throw invalid('nowSeconds must be a number')
      const { record, deleted } = db
        .transaction((): { record: KeyPackageRecord | undefined; deleted: boolean } => {
          const dropped = this.sql.dropExpired.run(clientId, nowSeconds).changes > 0
          const oneTime = this.sql.takeOldest.get(clientId)
          if (oneTime !== undefined) {
            this.sql.recordServed.run(oneTime.ref, clientId)
            return { record: this.keyPackageOut(oneTime, clientId, false), deleted: true }
          }
          const last = this.sql.getLastResort.get(clientId)
          if (last === undefined || last.not_after < nowSeconds) return { record: undefined, deleted: dropped }
          this.sql.recordServed.run(last.ref, clientId)
          return { record: this.keyPackageOut(last, clientId, true), deleted: dropped }
        })
        .immediate()
      if (deleted) this.requestTruncate()
      return record
    })
  }

  async serveLastResortKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined> {
    return this.run('serveLastResortKeyPackage', options, (db) => {
      if (typeof nowSeconds !== 'number' || Number.isNaN(nowSeconds)) throw invalid('nowSeconds must be a number')
      return db
        .transaction((): KeyPackageRecord | undefined => {
          const last = this.sql.getLastResort.get(clientId)
          if (last === undefined || last.not_after < nowSeconds) return undefined
          this.sql.recordServed.run(last.ref, clientId)
          return this.keyPackageOut(last, clientId, true)
        })
        .immediate()
    })
  }

  async readDeviceList(userId: string, options?: AbortOptions): Promise<Uint8Array[]> {
    return this.run('readDeviceList', options, () => this.sql.readDeviceList.all(userId).map((row) => bytesOut(row.entry)))
  }

  async appendDeviceListEntry(userId: string, expectedLength: number, entry: Uint8Array, options?: AbortOptions): Promise<'appended' | 'conflict'> {
    return this.run('appendDeviceListEntry', options, (db) => {
      checkString(userId, 'userId')
      checkInteger(expectedLength, 'expectedLength')
      checkBytes(entry, 'device-list entry')
      return db
        .transaction((): 'appended' | 'conflict' => {
          if ((this.sql.countDeviceList.get(userId)?.n ?? 0) !== expectedLength) return 'conflict'
          this.sql.insertDeviceListEntry.run(userId, expectedLength + 1, entry)
          return 'appended'
        })
        .immediate()
    })
  }

  private keyPackageOut(row: KeyPackageRow, clientId: ClientId, lastResort: boolean): KeyPackageRecord {
    return { ref: row.ref, clientId, keyPackage: bytesOut(row.key_package), lastResort, notAfter: row.not_after }
  }

  async countKeyPackages(clientId: ClientId, options?: AbortOptions): Promise<{ oneTime: number; lastResort: boolean }> {
    return this.run('countKeyPackages', options, (db) =>
      db.transaction(() => ({
        oneTime: this.sql.countPool.get(clientId)?.n ?? 0,
        lastResort: (this.sql.hasLastResort.get(clientId)?.n ?? 0) > 0
      }))()
    )
  }

  async lookupServedKeyPackage(ref: string, options?: AbortOptions): Promise<ClientId | undefined> {
    return this.run('lookupServedKeyPackage', options, () => this.sql.lookupServed.get(ref)?.client_id)
  }

  async createGroup(group: NewGroupRecord, options?: AbortOptions): Promise<boolean> {
    return this.run('createGroup', options, (db) => {
      checkString(group.groupId, 'groupId')
      checkPublicState(group.publicState)
      checkEpoch(group.epoch, 'Group epoch')
      checkInteger(group.lastSeq, 'Group lastSeq')
      checkRoster(group.roster)
      checkAccess(group.access)
      return db
        .transaction((): boolean => {
          if (this.sql.insertGroup.run(group.groupId, group.epoch, group.lastSeq).changes === 0) return false
          this.writeMembers(group.groupId, group.roster, group.access)
          if (group.publicState !== undefined) this.writePublicState(group.groupId, group.publicState)
          return true
        })
        .immediate()
    })
  }

  private writeMembers(groupId: GroupIdHex, roster: readonly RosterEntry[], access: readonly AccessWindow[]): void {
    this.sql.deleteRoster.run(groupId)
    this.sql.deleteAccess.run(groupId)
    roster.forEach((e, i) => this.sql.insertRoster.run(groupId, i, e.leafIndex, e.clientId))
    access.forEach((w, i) => this.sql.insertAccess.run(groupId, i, w.clientId, w.fromSeq, w.untilSeq))
  }

  private writePublicState(groupId: GroupIdHex, record: PublicStateRecord): void {
    this.sql.putPublicState.run(groupId, record.epoch, record.state, record.groupInfo ?? null)
  }

  async getPublicState(groupId: GroupIdHex, options?: AbortOptions): Promise<PublicStateRecord | undefined> {
    return this.run('getPublicState', options, () => {
      const row = this.sql.getPublicState.get(groupId)
      if (row === undefined) return undefined
      return { epoch: row.epoch, state: bytesOut(row.state), groupInfo: row.group_info === null ? undefined : bytesOut(row.group_info) }
    })
  }

  async listGroupsOf(clientId: ClientId, options?: AbortOptions): Promise<GroupIdHex[]> {
    checkString(clientId, 'clientId')
    return this.run('listGroupsOf', options, () => this.sql.listGroupsOf.all(clientId).map((r) => r.group_id))
  }

  async getGroup(groupId: GroupIdHex, options?: AbortOptions): Promise<GroupRecord | undefined> {
    return this.run('getGroup', options, (db) =>
      db.transaction((): GroupRecord | undefined => {
        const row = this.sql.getGroup.get(groupId)
        if (row === undefined) return undefined
        return {
          groupId,
          epoch: row.epoch,
          lastSeq: Number(row.last_seq),
          roster: this.sql.getRoster.all(groupId).map((r) => ({ leafIndex: r.leaf_index, clientId: r.client_id })),
          access: this.sql.getAccess.all(groupId).map((w) => ({ clientId: w.client_id, fromSeq: w.from_seq, untilSeq: w.until_seq }))
        }
      })()
    )
  }

  private lockGroup(groupId: GroupIdHex): { epoch: bigint; lastSeq: number } {
    const row = this.sql.getGroup.get(groupId)
    if (row === undefined) throw new StorageError('UNKNOWN_GROUP', `Unknown group ${groupId}`)
    return { epoch: row.epoch, lastSeq: Number(row.last_seq) }
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
    return this.run('appendCommit', options, (db) =>
      db
        .transaction((): AppendCommitResult => {
          const group = this.lockGroup(groupId)
          checkLogEntry(commit.entry)
          checkRoster(commit.roster)
          checkAccess(commit.access)
          checkPublicState(commit.publicState)
          for (const w of commit.welcomes) {
            checkString(w.clientId, 'Welcome clientId')
            checkBytes(w.welcome, 'welcome')
          }
          if (typeof commit.expectedEpoch !== 'bigint') throw invalid('expectedEpoch must be a bigint')
          if (group.epoch !== commit.expectedEpoch) return { kind: 'conflict', epoch: group.epoch }
          const nextEpoch = commit.expectedEpoch + 1n
          checkEpoch(nextEpoch, 'The next epoch')
          const seq = group.lastSeq + 1
          const { entry } = commit
          this.sql.insertLog.run(groupId, seq, entry.kind, entry.epoch, entry.sender, entry.message, entry.digest)
          this.sql.updateGroup.run(nextEpoch, seq, groupId)
          const resolve = (n: number | null): number | null => (n === -1 ? seq : n)
          this.writeMembers(
            groupId,
            commit.roster,
            commit.access.map((w) => ({ clientId: w.clientId, fromSeq: resolve(w.fromSeq) as number, untilSeq: resolve(w.untilSeq) }))
          )
          if (commit.publicState !== undefined) this.writePublicState(groupId, commit.publicState)
          // One copy per distinct Welcome of the commit; each recipient's mailbox row refers to it.
          const { distinct, indexOf } = distinctBytes(commit.welcomes.map((w) => w.welcome))
          const ids = distinct.map((welcome) => this.sql.insertWelcomeMessage.run(groupId, seq, welcome).lastInsertRowid)
          const welcomeSeqs = commit.welcomes.map(({ clientId }, i) => {
            const mailboxSeq = this.sql.nextWelcomeSeq.get(clientId)?.last_seq as number
            this.sql.insertWelcome.run(clientId, mailboxSeq, ids[indexOf[i] as number] as number | bigint)
            return { clientId, seq: mailboxSeq }
          })
          return { kind: 'accepted', seq, welcomeSeqs }
        })
        .immediate()
    )
  }

  async appendMessage(groupId: GroupIdHex, entry: NewLogEntry, options?: AbortOptions): Promise<AppendMessageResult> {
    return this.run('appendMessage', options, (db) =>
      db
        .transaction((): AppendMessageResult => {
          const group = this.lockGroup(groupId)
          checkLogEntry(entry)
          if ((this.sql.hasDigest.get(groupId, entry.digest)?.n ?? 0) > 0) return { kind: 'duplicate' }
          if (this.sql.inRoster.get(groupId, entry.sender) === undefined) return { kind: 'not-a-member' }
          const seq = group.lastSeq + 1
          this.sql.insertLog.run(groupId, seq, entry.kind, entry.epoch, entry.sender, entry.message, entry.digest)
          this.sql.setLastSeq.run(seq, groupId)
          return { kind: 'accepted', seq }
        })
        .immediate()
    )
  }

  async appendProposal(
    groupId: GroupIdHex,
    proposal: { expectedEpoch: bigint; expectedState?: Uint8Array; entry: NewLogEntry; publicState: PublicStateRecord },
    options?: AbortOptions
  ): Promise<AppendProposalResult> {
    const expectedState = proposal.expectedState
    if (expectedState !== undefined && !(expectedState instanceof Uint8Array)) throw invalid('expectedState must be a Uint8Array')
    return this.run('appendProposal', options, (db) =>
      db
        .transaction((): AppendProposalResult => {
          const group = this.lockGroup(groupId)
          checkLogEntry(proposal.entry)
          if (proposal.publicState === undefined) throw invalid('A proposal comes with the public state that holds it')
          checkPublicState(proposal.publicState)
          if (typeof proposal.expectedEpoch !== 'bigint') throw invalid('expectedEpoch must be a bigint')
          if (group.epoch !== proposal.expectedEpoch) return { kind: 'conflict', epoch: group.epoch }
          if (expectedState !== undefined) {
            const stored = this.sql.getPublicState.get(groupId)
            if (stored === undefined || !Buffer.from(stored.state).equals(expectedState)) return { kind: 'conflict', epoch: group.epoch }
          }
          const { entry } = proposal
          if ((this.sql.hasDigest.get(groupId, entry.digest)?.n ?? 0) > 0) return { kind: 'duplicate' }
          const seq = group.lastSeq + 1
          this.sql.insertLog.run(groupId, seq, entry.kind, entry.epoch, entry.sender, entry.message, entry.digest)
          this.sql.setLastSeq.run(seq, groupId)
          this.writePublicState(groupId, proposal.publicState)
          return { kind: 'accepted', seq }
        })
        .immediate()
    )
  }

  async readLog(groupId: GroupIdHex, afterSeq: number, limit: number, untilSeq?: number, options?: AbortOptions): Promise<LogRecord[]> {
    return this.run('readLog', options, () => {
      if (!(limit > 0)) return []
      const rows = this.sql.readLog.all(groupId, afterSeq, untilSeq ?? Number.MAX_SAFE_INTEGER, sqlLimit(limit))
      return rows.map((r) => ({ seq: Number(r.seq), kind: r.kind, epoch: r.epoch, sender: r.sender, message: bytesOut(r.message), digest: r.digest }))
    })
  }

  async pruneLogs(pruning: LogPruning, options?: AbortOptions): Promise<{ deleted: number }> {
    return this.run('pruneLogs', options, (db) => {
      const result = db
        .transaction((): { deleted: number } => {
          this.sql.dropStaleCursors.run()
          const byHardLimit = this.sql.pruneByHardLimit.run(pruning.hardLimitBeforeMs ?? 0).changes
          const byAge = this.sql.pruneByAge.run(pruning.appendedBeforeMs).changes
          const byCount = this.sql.pruneByCount.run(Math.min(Math.max(0, pruning.keepMessages), Number.MAX_SAFE_INTEGER)).changes
          this.sql.moveRetainedFrom.run()
          this.sql.forgetDigests.run(Math.max(0, pruning.keepDigestsForEpochs))
          return { deleted: byHardLimit + byAge + byCount }
        })
        .immediate()
      // secure_delete zeroed the freed bytes in the new pages; the checkpoint replaces the old pages in the main file.
      if (result.deleted > 0) this.requestTruncate()
      return result
    })
  }

  async logRetainedFrom(groupId: GroupIdHex, options?: AbortOptions): Promise<number | undefined> {
    return this.run('logRetainedFrom', options, () => this.sql.getRetainedFrom.get(groupId)?.log_retained_from)
  }

  async advanceFetchCursors(cursors: readonly FetchCursor[], options?: AbortOptions): Promise<void> {
    return this.run('advanceFetchCursors', options, (db) => {
      for (const c of cursors) {
        checkString(c.groupId, 'Fetch cursor groupId')
        checkString(c.clientId, 'Fetch cursor clientId')
        checkInteger(c.seq, 'Fetch cursor seq')
        if (c.seq < 0) throw invalid('A fetch cursor seq is a non-negative integer')
      }
      if (cursors.length === 0) return
      db.transaction(() => {
        for (const c of cursors) this.sql.advanceCursor.run(c.seq, c.groupId, c.clientId)
      }).immediate()
    })
  }

  async readFetchCursors(groupId: GroupIdHex, options?: AbortOptions): Promise<FetchCursor[]> {
    return this.run('readFetchCursors', options, () => this.sql.readCursors.all(groupId).map((r) => ({ groupId, clientId: r.client_id, seq: r.seq })))
  }

  async pruneWelcomes(pruning: WelcomePruning, options?: AbortOptions): Promise<{ deleted: number }> {
    return this.run('pruneWelcomes', options, (db) => {
      for (const value of [pruning.appendedBeforeMs, pruning.keepWelcomes]) {
        if (typeof value !== 'number' || Number.isNaN(value)) throw invalid('Welcome pruning limits are numbers')
      }
      const result = db
        .transaction((): { deleted: number; copies: number } => {
          const byAge = this.sql.pruneWelcomesByAge.run(pruning.appendedBeforeMs).changes
          const byCount = this.sql.pruneWelcomesByCount.run(Math.min(Math.max(0, pruning.keepWelcomes), Number.MAX_SAFE_INTEGER)).changes
          const copies = this.sql.dropUnreferencedWelcomes.run().changes
          return { deleted: byAge + byCount, copies }
        })
        .immediate()
      // secure_delete zeroed the freed bytes in the new pages; the checkpoint replaces the old pages in the main file.
      if (result.copies > 0) this.requestTruncate()
      return { deleted: result.deleted }
    })
  }

  async readWelcomes(clientId: ClientId, afterSeq: number, limit: number, options?: AbortOptions): Promise<WelcomeRecord[]> {
    return this.run('readWelcomes', options, () => {
      if (!(limit > 0)) return []
      return this.sql.readWelcomes
        .all(clientId, afterSeq, sqlLimit(limit))
        .map((r) => ({ seq: r.seq, groupId: r.group_id, welcome: bytesOut(r.welcome), commitSeq: r.commit_seq }))
    })
  }
}

/**
 * A server store in one SQLite file (better-sqlite3): the embedded default.
 * Each method is one transaction (appendCommit's epoch check, log append,
 * roster/access replacement and Welcome inserts; consumeKeyPackage's take,
 * delete and served-ref record); WAL with `synchronous = FULL` by default, so
 * a resolved call survives a crash or a power loss. Consumed, expired and
 * replaced KeyPackages are overwritten in the file (`secure_delete`, then a
 * WAL checkpoint before the call resolves). Opening is synchronous and throws
 * (see `openDatabase`).
 */
export function sqliteServerStore(init: SqliteServerStoreInit): ServerStore {
  const db = openDatabase(init, SERVER_SCHEMA)
  return new SqliteServerStore(db, init)
}
