/**
 * Where a record sits in its shard, and the order of those places — the one definition every
 * package uses (windows, state stores, runtimes, the Lambda simulator).
 *
 * - A **sequence number** is what Kinesis and DynamoDB Streams assign: a decimal string of up to
 *   128 bits (no leading zeros), ordered by value — a shorter string is a smaller number; strings
 *   of one length compare lexicographically. No BigInt is needed.
 * - A **position** is `sequence[:subSequence]`: the sub-sequence number tells apart the user
 *   records of one KPL aggregate (which share its sequence number). A position without one comes
 *   before every user record of its sequence number.
 */
import type { RecordEnvelope } from './envelope.js';

/** Orders sequence numbers by value (see the module comment): negative, zero or positive. */
export function compareSequenceNumbers(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders positions `sequence[:subSequence]` by value: by sequence number, then sub-sequence number. */
export function comparePositions(a: string, b: string): number {
  const ia = a.indexOf(':');
  const ib = b.indexOf(':');
  const bySequence = compareSequenceNumbers(ia < 0 ? a : a.slice(0, ia), ib < 0 ? b : b.slice(0, ib));
  if (bySequence !== 0) return bySequence;
  const ua = ia < 0 ? -1 : Number(a.slice(ia + 1));
  const ub = ib < 0 ? -1 : Number(b.slice(ib + 1));
  return ua === ub ? 0 : ua < ub ? -1 : 1;
}

/** A record's position in its shard: `sequence[:subSequence]`. */
export function positionOf(env: RecordEnvelope): string {
  const sub = env.subSequenceNumber;
  return sub === undefined ? env.sequenceNumber : `${env.sequenceNumber}:${sub}`;
}
