import { StorageError } from '@mls/contracts'
import type { Database, Queryable } from './database.js'
import { toStorageError } from './database.js'

/**
 * Each migration brings the schema from version `index` to `index + 1`, in
 * one transaction. Version 1:
 *
 * - `known_key_package_refs` remembers every ref ever accepted, so a retried
 *   upload never brings back a consumed, expired or replaced KeyPackage.
 * - `key_packages.id` is the serve order (oldest upload first).
 * - A group's roster and access windows are JSON arrays in its row, so one
 *   read of the row is one consistent snapshot of the group.
 * - `mailbox_heads` numbers each client's Welcomes; its row is the lock that
 *   orders concurrent commits welcoming the same client.
 * - Epochs are 64-bit signed integers (an epoch of 2^63 or more is refused).
 */
const MIGRATIONS: readonly ((s: string) => string)[] = [
  (s) => `
    CREATE TABLE ${s}.identities (
      client_id TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      signature_public_key BYTEA NOT NULL,
      ciphersuite TEXT NOT NULL,
      registered_at BIGINT NOT NULL
    );
    CREATE INDEX identities_by_user ON ${s}.identities (user_id, client_id COLLATE "C");

    CREATE TABLE ${s}.known_key_package_refs (ref TEXT PRIMARY KEY);

    CREATE TABLE ${s}.key_packages (
      id BIGSERIAL PRIMARY KEY,
      ref TEXT NOT NULL UNIQUE REFERENCES ${s}.known_key_package_refs (ref),
      client_id TEXT NOT NULL,
      key_package BYTEA NOT NULL,
      not_after BIGINT NOT NULL
    );
    CREATE INDEX key_packages_by_client ON ${s}.key_packages (client_id, id);

    CREATE TABLE ${s}.last_resort_key_packages (
      client_id TEXT PRIMARY KEY,
      ref TEXT NOT NULL UNIQUE REFERENCES ${s}.known_key_package_refs (ref),
      key_package BYTEA NOT NULL,
      not_after BIGINT NOT NULL
    );

    CREATE TABLE ${s}.served_key_packages (
      ref TEXT PRIMARY KEY REFERENCES ${s}.known_key_package_refs (ref),
      client_id TEXT NOT NULL
    );

    CREATE TABLE ${s}.groups (
      group_id TEXT PRIMARY KEY,
      epoch BIGINT NOT NULL,
      last_seq BIGINT NOT NULL,
      roster JSONB NOT NULL,
      access JSONB NOT NULL
    );

    CREATE TABLE ${s}.log_entries (
      group_id TEXT NOT NULL REFERENCES ${s}.groups (group_id),
      seq BIGINT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('commit', 'application')),
      epoch BIGINT NOT NULL,
      sender TEXT NOT NULL,
      message BYTEA NOT NULL,
      digest TEXT NOT NULL,
      PRIMARY KEY (group_id, seq),
      UNIQUE (group_id, digest)
    );

    CREATE TABLE ${s}.mailbox_heads (
      client_id TEXT PRIMARY KEY,
      last_seq BIGINT NOT NULL
    );

    CREATE TABLE ${s}.welcomes (
      client_id TEXT NOT NULL,
      seq BIGINT NOT NULL,
      group_id TEXT NOT NULL REFERENCES ${s}.groups (group_id),
      welcome BYTEA NOT NULL,
      commit_seq BIGINT NOT NULL,
      PRIMARY KEY (client_id, seq)
    );
  `,
  // Version 2: signed device lists (issue 8), one row per entry; the public
  // state the channel keeps per group (issue 9), replaced with every accepted
  // commit and proposal; log entries may be standalone proposals.
  (s) => `
    CREATE TABLE ${s}.device_list_entries (
      user_id TEXT NOT NULL,
      position INTEGER NOT NULL,
      entry BYTEA NOT NULL,
      PRIMARY KEY (user_id, position)
    );

    CREATE TABLE ${s}.group_public_state (
      group_id TEXT PRIMARY KEY REFERENCES ${s}.groups (group_id),
      epoch BIGINT NOT NULL,
      state BYTEA NOT NULL,
      group_info BYTEA
    );

    ALTER TABLE ${s}.log_entries DROP CONSTRAINT log_entries_kind_check;
    ALTER TABLE ${s}.log_entries ADD CONSTRAINT log_entries_kind_check CHECK (kind IN ('commit', 'application', 'proposal'));
  `,
  // Version 3 (issue 13): log retention. Each log entry records when it was
  // appended (milliseconds, the database's clock; entries of an upgraded store
  // get the upgrade's time), and each group the seq from which its log is
  // complete (pruneLogs moves it past the last message it deletes).
  (s) => `
    ALTER TABLE ${s}.log_entries ADD COLUMN appended_at BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    CREATE INDEX log_entries_by_kind ON ${s}.log_entries (kind, appended_at);
    ALTER TABLE ${s}.groups ADD COLUMN log_retained_from BIGINT NOT NULL DEFAULT 1;
  `,
  // Version 4 (issue 13): per-member fetch cursors. Retention keeps every
  // application message after the lowest cursor of a group's current members
  // (unless it is older than the hard limit). A member without a row counts
  // from its access window's fromSeq, so an upgraded store starts there. No
  // foreign key: a cursor write would then lock the group row (FOR KEY SHARE)
  // against every append; the insert itself checks the group and membership.
  (s) => `
    CREATE TABLE ${s}.fetch_cursors (
      group_id TEXT NOT NULL,
      client_id TEXT NOT NULL,
      seq BIGINT NOT NULL,
      PRIMARY KEY (group_id, client_id)
    );
  `,
  // Version 5 (issue 11): one stored copy of a commit's Welcome. A Welcome
  // that adds many members holds the whole ratchet tree (megabytes at
  // thousands of members); version 4 stored it once per recipient. Each copy
  // is a row of welcome_messages (with its group, commit seq and append
  // time); each mailbox row refers to one (mailbox_heads already keeps each
  // client's newest seq, so pruning never makes a seq come back). Existing
  // rows are moved: rows of one commit with equal bytes share one copy
  // (appended at the upgrade's time). The dropped columns' space is reused
  // by later rows (or given back by VACUUM FULL).
  (s) => `
    CREATE TABLE ${s}.welcome_messages (
      id BIGSERIAL PRIMARY KEY,
      group_id TEXT NOT NULL REFERENCES ${s}.groups (group_id),
      commit_seq BIGINT NOT NULL,
      welcome BYTEA NOT NULL,
      appended_at BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
    );
    CREATE INDEX welcome_messages_by_commit ON ${s}.welcome_messages (group_id, commit_seq);
    CREATE INDEX welcome_messages_by_age ON ${s}.welcome_messages (appended_at);
    INSERT INTO ${s}.welcome_messages (group_id, commit_seq, welcome)
      SELECT DISTINCT group_id, commit_seq, welcome FROM ${s}.welcomes ORDER BY group_id, commit_seq;
    ALTER TABLE ${s}.welcomes ADD COLUMN welcome_id BIGINT;
    UPDATE ${s}.welcomes AS w SET welcome_id = m.id FROM ${s}.welcome_messages AS m
      WHERE m.group_id = w.group_id AND m.commit_seq = w.commit_seq AND m.welcome = w.welcome;
    ALTER TABLE ${s}.welcomes
      ALTER COLUMN welcome_id SET NOT NULL,
      ADD CONSTRAINT welcomes_welcome_id_fkey FOREIGN KEY (welcome_id) REFERENCES ${s}.welcome_messages (id),
      DROP COLUMN welcome,
      DROP COLUMN group_id,
      DROP COLUMN commit_seq;
    CREATE INDEX welcomes_by_message ON ${s}.welcomes (welcome_id);
  `
]

/** The server store schema version this release writes (`<schema>.store_format`). */
export const POSTGRES_SERVER_STORE_SCHEMA_VERSION = MIGRATIONS.length

/**
 * Create the schema on first use and migrate it to this release's version,
 * under an advisory lock so that instances starting together migrate once.
 * Refuses a schema written by a newer release (`UNSUPPORTED_SPECIFICATION`)
 * and a schema that holds other tables but no `store_format` (`STORAGE_CORRUPT`).
 */
export async function migrate(db: Database, schema: string): Promise<void> {
  await db.transaction('migrate', undefined, async (client: Queryable) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mls-schema:${schema}`])
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
    const format = await client.query<{ exists: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'store_format') AS exists`,
      [schema]
    )
    let version = 0
    if (format.rows[0]?.exists === true) {
      const row = await client.query<{ kind: string; version: number }>(`SELECT kind, version FROM ${schema}.store_format`)
      const stored = row.rows[0]
      if (stored === undefined || stored.kind !== 'mls server store') {
        throw new StorageError('STORAGE_CORRUPT', `Schema ${schema} holds no MLS server store (store_format is ${JSON.stringify(stored)})`)
      }
      version = stored.version
    } else {
      const others = await client.query<{ n: string }>('SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1', [schema])
      if (Number(others.rows[0]?.n ?? 0) > 0) throw new StorageError('STORAGE_CORRUPT', `Schema ${schema} holds tables but no store_format: not an MLS server store`)
      await client.query(`CREATE TABLE ${schema}.store_format (kind TEXT NOT NULL, version INTEGER NOT NULL)`)
      await client.query(`INSERT INTO ${schema}.store_format (kind, version) VALUES ('mls server store', 0)`)
    }
    if (version > MIGRATIONS.length) {
      throw new StorageError('UNSUPPORTED_SPECIFICATION', `Schema ${schema} is at server store version ${version}; this release knows up to ${MIGRATIONS.length}`, {
        details: { schemaVersion: version, supportedVersion: MIGRATIONS.length }
      })
    }
    for (; version < MIGRATIONS.length; version++) await client.query((MIGRATIONS[version] as (s: string) => string)(schema))
    await client.query(`UPDATE ${schema}.store_format SET version = $1`, [version])
  }).catch((error: unknown) => {
    throw toStorageError(error, `opening schema ${schema}`)
  })
}
