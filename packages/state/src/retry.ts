/**
 * Retries of store calls: transient failures (throttling, a dropped connection, a restarting
 * server) are retried with jittered exponential backoff; anything else, or a failure that
 * outlasts the retries, becomes a {@link StateStoreError} and fails the batch (so the runtime
 * retries the batch — nothing is dropped).
 */
import { isTransient } from '@tributary/core';
import pRetry from 'p-retry';
import { StateStoreError } from './errors.js';

export interface RetryOptions {
  /** Retries after the first attempt (default 6). */
  retries?: number;
  /** First backoff in ms (default 50); doubles per retry, jittered, capped at `maxDelay`. */
  minDelay?: number;
  /** Backoff cap in ms (default 2000). */
  maxDelay?: number;
}

/** Runs `fn`, retrying transient failures; `what` names the call in the error. */
export async function withRetries<T>(what: string, fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  try {
    return await pRetry(fn, {
      retries: options.retries ?? 6,
      minTimeout: options.minDelay ?? 50,
      maxTimeout: options.maxDelay ?? 2000,
      factor: 2,
      randomize: true,
      shouldRetry: ({ error }) => isTransient(error),
    });
  } catch (err) {
    const cause = err;
    // The SDK attaches the raw HTTP response; it says nothing the message does not, and is huge.
    if (typeof cause === 'object' && cause !== null && '$response' in cause)
      delete (cause as { $response?: unknown }).$response;
    const name = (cause as { name?: string }).name;
    const message = (cause as { message?: string }).message ?? String(cause);
    throw new StateStoreError(`state store: ${what} failed: ${name ? `${name}: ` : ''}${message}`, { cause });
  }
}
