/**
 * The one retry policy of Tributary's stores, sinks and lookups: exponential backoff with full
 * jitter (each delay uniform in [0, min(maxDelay, baseDelay · 2^(retry − 1))) — the AWS SDK's and
 * the KCL's choice: retries of many writers spread out instead of arriving together), a bounded
 * number of attempts, and only failures {@link isTransient} accepts (by default) retried. No SDK:
 * errors are recognised by name, code, status and message.
 *
 * `random` and `sleep` are injectable, so tests run without timers.
 */
import { isTransient } from './errors.js';

export interface BackoffPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** The cap of the first retry's delay in ms; it doubles per retry. */
  baseDelay: number;
  /** The cap of any delay in ms. */
  maxDelay: number;
  /** Uniform in [0, 1) (default `Math.random`). */
  random?: () => number;
  /** Waits `ms` (default a timer). */
  sleep?: (ms: number) => Promise<void>;
}

export interface RetryPolicy extends BackoffPolicy {
  /** Whether a failure is worth another attempt (default {@link isTransient}). */
  retryable?: (err: unknown) => boolean;
  /** Called before each retry (`retry` is 1 for the first) with the failure that caused it. */
  onRetry?: (err: unknown, retry: number) => void;
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The delay before retry `retry` (1 for the first): uniform in [0, min(maxDelay, baseDelay · 2^(retry − 1))). */
export function backoffDelay(policy: BackoffPolicy, retry: number): number {
  const cap = Math.min(policy.maxDelay, policy.baseDelay * 2 ** Math.max(0, retry - 1));
  return (policy.random ?? Math.random)() * cap;
}

/** Waits the delay before retry `retry`, or `atLeast` ms when that is longer (a server's Retry-After). */
export function backoff(policy: BackoffPolicy, retry: number, atLeast = 0): Promise<void> {
  return (policy.sleep ?? sleep)(Math.max(atLeast, backoffDelay(policy, retry)));
}

/**
 * Runs `fn` (given the attempt number, 0 for the first) until it resolves. A failure is retried
 * after a backoff while `retryable` accepts it and attempts remain; otherwise it is thrown as it
 * is — the last failure, untouched.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  const retryable = policy.retryable ?? isTransient;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt + 1 >= policy.maxAttempts || !retryable(err)) throw err;
      policy.onRetry?.(err, attempt + 1);
      await backoff(policy, attempt + 1);
    }
  }
}
