import type { Migration, SchemaDefinition } from './database.js'

/**
 * Schema version 1 of the server store.
 *
 * - `known_key_package_refs` remembers every ref ever accepted, so a retried
 *   upload never brings back a consumed, expired or replaced KeyPackage.
 * - `key_packages.id` is the serve order (oldest upload first).
 * - Roster and access rows keep the order they were given in `position`.
 * - Epochs are 64-bit signed integers (an epoch of 2^63 or more is refused).
 */
const v1: Migration = (db) => {
  db.exec(`
    CREATE TABLE identities (
      client_id TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      signature_public_key BLOB NOT NULL,
      ciphersuite TEXT NOT NULL,
      registered_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX identities_by_user ON identities (user_id, client_id);

    CREATE TABLE known_key_package_refs (
      ref TEXT PRIMARY KEY
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE key_packages (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      ref TEXT NOT NULL UNIQUE REFERENCES known_key_package_refs (ref),
      client_id TEXT NOT NULL,
      key_package BLOB NOT NULL,
      not_after INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX key_packages_by_client ON key_packages (client_id, id);

    CREATE TABLE last_resort_key_packages (
      client_id TEXT PRIMARY KEY,
      ref TEXT NOT NULL UNIQUE REFERENCES known_key_package_refs (ref),
      key_package BLOB NOT NULL,
      not_after INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE served_key_packages (
      ref TEXT PRIMARY KEY REFERENCES known_key_package_refs (ref),
      client_id TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE groups (
      group_id TEXT PRIMARY KEY,
      epoch INTEGER NOT NULL,
      last_seq INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE group_roster (
      group_id TEXT NOT NULL REFERENCES groups (group_id),
      position INTEGER NOT NULL,
      leaf_index INTEGER NOT NULL,
      client_id TEXT NOT NULL,
      PRIMARY KEY (group_id, position)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE group_access (
      group_id TEXT NOT NULL REFERENCES groups (group_id),
      position INTEGER NOT NULL,
      client_id TEXT NOT NULL,
      from_seq INTEGER NOT NULL,
      until_seq INTEGER,
      PRIMARY KEY (group_id, position)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE log_entries (
      group_id TEXT NOT NULL REFERENCES groups (group_id),
      seq INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('commit', 'application')),
      epoch INTEGER NOT NULL,
      sender TEXT NOT NULL,
      message BLOB NOT NULL,
      digest TEXT NOT NULL,
      UNIQUE (group_id, seq)
    ) STRICT;
    CREATE INDEX log_entries_by_digest ON log_entries (group_id, digest);

    CREATE TABLE welcomes (
      client_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      group_id TEXT NOT NULL REFERENCES groups (group_id),
      welcome BLOB NOT NULL,
      commit_seq INTEGER NOT NULL,
      UNIQUE (client_id, seq)
    ) STRICT;
  `)
}

/** Part of version 2 (issue 8): the signed device list of each user, one row per entry. */
const deviceLists: Migration = (db) => {
  db.exec(`
    CREATE TABLE device_list_entries (
      user_id TEXT NOT NULL,
      position INTEGER NOT NULL,
      entry BLOB NOT NULL,
      PRIMARY KEY (user_id, position)
    ) STRICT, WITHOUT ROWID;
  `)
}

/**
 * Part of version 2 (issue 9): the public state the channel keeps per group,
 * replaced with every accepted commit and proposal; log entries may be
 * standalone proposals (the table is rebuilt to widen its CHECK).
 */
const publicState: Migration = (db) => {
  db.exec(`
    CREATE TABLE group_public_state (
      group_id TEXT PRIMARY KEY REFERENCES groups (group_id),
      epoch INTEGER NOT NULL,
      state BLOB NOT NULL,
      group_info BLOB
    ) STRICT;

    CREATE TABLE log_entries_v2 (
      group_id TEXT NOT NULL REFERENCES groups (group_id),
      seq INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('commit', 'application', 'proposal')),
      epoch INTEGER NOT NULL,
      sender TEXT NOT NULL,
      message BLOB NOT NULL,
      digest TEXT NOT NULL,
      UNIQUE (group_id, seq)
    ) STRICT;
    INSERT INTO log_entries_v2 (group_id, seq, kind, epoch, sender, message, digest)
      SELECT group_id, seq, kind, epoch, sender, message, digest FROM log_entries;
    DROP TABLE log_entries;
    ALTER TABLE log_entries_v2 RENAME TO log_entries;
    CREATE INDEX log_entries_by_digest ON log_entries (group_id, digest);
  `)
}

/**
 * Version 3 (issue 13): log retention. Each log entry records when it was
 * appended (milliseconds, SQLite's clock; entries of an upgraded store get the
 * upgrade's time), and each group the seq from which its log is complete
 * (`pruneLogs` moves it past the last message it deletes).
 */
const retention: Migration = (db) => {
  db.exec(`
    ALTER TABLE log_entries ADD COLUMN appended_at INTEGER NOT NULL DEFAULT 0;
    UPDATE log_entries SET appended_at = ${NOW_MS};
    CREATE INDEX log_entries_by_kind ON log_entries (kind, appended_at);
    ALTER TABLE groups ADD COLUMN log_retained_from INTEGER NOT NULL DEFAULT 1;
  `)
}

/**
 * Version 4 (issue 13): per-member fetch cursors. Retention keeps every
 * application message after the lowest cursor of a group's current members
 * (unless it is older than the hard limit). A member without a row has its
 * access window's `from_seq` as cursor, so an upgraded store starts there.
 */
const fetchCursors: Migration = (db) => {
  db.exec(`
    CREATE TABLE fetch_cursors (
      group_id TEXT NOT NULL REFERENCES groups (group_id),
      client_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      PRIMARY KEY (group_id, client_id)
    ) STRICT, WITHOUT ROWID;
  `)
}

/**
 * Version 5 (issue 11): one stored copy of a commit's Welcome. A Welcome that
 * adds many members holds the whole ratchet tree (megabytes at thousands of
 * members); version 4 stored it once per recipient. `welcome_messages` holds
 * each copy (with its group, commit seq and append time), each mailbox row in
 * `welcomes` refers to one, and `welcome_mailboxes` keeps each client's newest
 * seq so that pruning never makes a seq come back. Existing rows are moved:
 * rows of one commit with equal bytes share one copy (appended at the
 * upgrade's time).
 */
const sharedWelcomes: Migration = (db) => {
  db.exec(`
    CREATE TABLE welcome_messages (
      id INTEGER PRIMARY KEY,
      group_id TEXT NOT NULL REFERENCES groups (group_id),
      commit_seq INTEGER NOT NULL,
      welcome BLOB NOT NULL,
      appended_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX welcome_messages_by_commit ON welcome_messages (group_id, commit_seq);
    CREATE INDEX welcome_messages_by_age ON welcome_messages (appended_at);
    INSERT INTO welcome_messages (group_id, commit_seq, welcome, appended_at)
      SELECT DISTINCT group_id, commit_seq, welcome, ${NOW_MS} FROM welcomes ORDER BY group_id, commit_seq;

    CREATE TABLE welcome_mailboxes (
      client_id TEXT PRIMARY KEY,
      last_seq INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT INTO welcome_mailboxes (client_id, last_seq) SELECT client_id, max(seq) FROM welcomes GROUP BY client_id;

    CREATE TABLE welcomes_v5 (
      client_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      welcome_id INTEGER NOT NULL REFERENCES welcome_messages (id),
      PRIMARY KEY (client_id, seq)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO welcomes_v5 (client_id, seq, welcome_id)
      SELECT w.client_id, w.seq, (SELECT m.id FROM welcome_messages AS m
        WHERE m.group_id = w.group_id AND m.commit_seq = w.commit_seq AND m.welcome = w.welcome) FROM welcomes AS w;
    DROP TABLE welcomes;
    ALTER TABLE welcomes_v5 RENAME TO welcomes;
    CREATE INDEX welcomes_by_message ON welcomes (welcome_id);
  `)
}

/** SQLite's clock as milliseconds since the Unix epoch. */
export const NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

export const SERVER_SCHEMA: SchemaDefinition = {
  kind: 'server store',
  // 'MLSS'
  applicationId: 0x4d4c5353,
  // Version 2 is one migration: device lists (issue 8) and public state (issue 9)
  // were developed in parallel and released together, so no store was ever
  // written with only one of them.
  migrations: [
    v1,
    (db) => {
      deviceLists(db)
      publicState(db)
    },
    retention,
    fetchCursors,
    sharedWelcomes
  ]
}

/** The server store schema version this release writes (`PRAGMA user_version`). */
export const SQLITE_SERVER_STORE_SCHEMA_VERSION = SERVER_SCHEMA.migrations.length
