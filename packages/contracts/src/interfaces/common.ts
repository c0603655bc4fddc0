/**
 * Options every asynchronous method accepts. When `signal` is aborted before the
 * operation completes, the operation rejects with an error whose `code` is
 * `ABORTED` and, where it writes, changes nothing.
 */
export interface AbortOptions {
  /** Aborts the operation; it then rejects with `ABORTED`. */
  signal?: AbortSignal
}

/**
 * A client is one device of one user. Its id is `${userId}/${deviceId}`; neither
 * part may be empty or contain `/`, and each is at most 128 UTF-8 bytes. The
 * basic credential of a client carries the UTF-8 bytes of its client id.
 */
export type ClientId = string

/** Lower-case hex encoding of a group id, as services and stores key groups. */
export type GroupIdHex = string
