/**
 * A throwaway PostgreSQL cluster for tests and benchmarks (see cluster.js).
 */
export interface Cluster {
  /** `postgres://mls@127.0.0.1:PORT/postgres` */
  readonly url: string
  /** The URL of another database of this cluster. */
  urlOf(database: string): string
  /** Create a new empty database and return its URL. */
  createDatabase(name: string): string
  /**
   * A plain-SQL dump of one schema of a database (`pg_dump --schema --no-owner`),
   * without the `\restrict` lines of recent pg_dump releases (older psql does not know them).
   */
  dump(url: string, schema: string): string
  /** Run an SQL script (e.g. a dump) against a database, stopping at the first error. */
  runScript(url: string, sql: string): void
  /** Kill the PostgreSQL server (postmaster) with SIGKILL: a database crash. */
  killServer(): void
  /** Start it again on the same data directory (crash recovery runs). */
  restart(): void
  stop(): void
}

/** Install Debian's PostgreSQL when missing, initdb under a temp dir, start it on a free 127.0.0.1 port. */
export declare function startCluster(settings?: {
  /** Keep `fsync` and `full_page_writes` on (PostgreSQL's defaults), for benchmarks. Default false. */
  durable?: boolean
}): Promise<Cluster>
