/**
 * Retries of store calls: transient failures (throttling, a dropped connection, a restarting
 * server) are retried with core's jittered exponential backoff; anything else, or a failure that
 * outlasts the retries, becomes a {@link StateStoreError} and fails the batch (so the runtime
 * retries the batch — nothing is dropped).
 *
 * The back-end's error is kept, untouched, as the `cause`: SDK errors may be frozen or carry
 * non-configurable properties (the AWS SDK defines `$response` so; it is not enumerable, so it
 * is not printed either), and translating an error must never throw in its place.
 */
import { retry } from '@tributary/core/spi';
import { StateStoreError } from './errors.js';

export interface RetryOptions {
  /** Retries after the first attempt (default 6). */
  retries?: number;
  /** Cap of the first backoff in ms (default 50); doubles per retry, full jitter, capped at `maxDelay`. */
  minDelay?: number;
  /** Backoff cap in ms (default 2000). */
  maxDelay?: number;
}

/** Reads a property of a thrown value without trusting it (a getter may throw, a proxy may lie). */
function field(err: unknown, key: string): string | undefined {
  if ((typeof err !== 'object' && typeof err !== 'function') || err === null) return undefined;
  try {
    const v = (err as Record<string, unknown>)[key];
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** `String(err)` that cannot throw (an object without a usable `toString`). */
function text(err: unknown): string {
  try {
    return String(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}

/**
 * What a failure means, in the store's words. `what` names the call and, by the stores'
 * convention, the resource: `read (dynamodb table t)`, `dynamodb lookup t`.
 */
export function storeFailureMessage(what: string, err: unknown): string {
  const name = field(err, 'name');
  const message = (field(err, 'message') ?? text(err)).split('\n')[0];
  const raw = `${name ? `${name}: ` : ''}${message}`;
  if (name === 'ResourceNotFoundException') {
    // Not retryable: the table is gone (deleted, or another region or account) — say which.
    const table = /dynamodb (?:table|lookup) ([^\s)]+)/.exec(what)?.[1];
    return `state store: ${what} failed: ${table === undefined ? 'the table' : `table ${table}`} not found (deleted?): ${raw}`;
  }
  return `state store: ${what} failed: ${raw}`;
}

/** Runs `fn`, retrying transient failures; `what` names the call (and its table) in the error. */
export async function withRetries<T>(what: string, fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  try {
    return await retry(fn, {
      maxAttempts: 1 + (options.retries ?? 6),
      baseDelay: options.minDelay ?? 50,
      maxDelay: options.maxDelay ?? 2000,
    });
  } catch (err) {
    throw new StateStoreError(storeFailureMessage(what, err), { cause: err });
  }
}
