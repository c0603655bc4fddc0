import { ServiceError } from './errors.js'

/**
 * The error for a page of a log or mailbox that moved the reader's cursor
 * nowhere: entries it had already read, a gap, or seqs going backwards. A
 * server that answers so would have the reader fetch the same page forever;
 * the reader stops and reports the server as misbehaving instead
 * (`SERVER_MISBEHAVING`, own trouble: nothing durable changed, and the next
 * sync, after backoff, asks again).
 */
export function noProgress(what: string, cursor: number, page: readonly { readonly seq: number }[]): ServiceError {
  const seqs = page.map((entry) => entry.seq)
  const shown = seqs.length > 6 ? [...seqs.slice(0, 3), '…', ...seqs.slice(-2)] : seqs
  return new ServiceError('SERVER_MISBEHAVING', `The server's page of ${what} after seq ${cursor} made no progress (seqs ${shown.join(', ')})`, {
    details: { reason: 'no-progress', cursor, first: seqs[0], last: seqs.at(-1), count: seqs.length }
  })
}
