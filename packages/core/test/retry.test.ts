// The one backoff of stores, sinks and lookups: full jitter within the cap, attempts bounded, the
// last failure thrown untouched, non-transient failures not retried. No timers: `sleep` and
// `random` are injected.
import { backoffDelay, retry } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';

const throttled = () => Object.assign(new Error('slow down'), { name: 'ThrottlingException' });

function recorder(random = () => 0.999999) {
  const waits: number[] = [];
  return { waits, random, sleep: async (ms: number) => void waits.push(ms) };
}

describe('backoff', () => {
  it('draws each delay uniformly below min(maxDelay, baseDelay · 2^(retry − 1))', () => {
    const policy = { maxAttempts: 10, baseDelay: 50, maxDelay: 1000 };
    const caps = [1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay({ ...policy, random: () => 1 }, n));
    expect(caps).toEqual([50, 100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay({ ...policy, random: () => 0 }, 3)).toBe(0);
    expect(backoffDelay({ ...policy, random: () => 0.5 }, 3)).toBe(100);
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(policy, 1 + (i % 8));
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(Math.min(1000, 50 * 2 ** (i % 8)));
    }
  });

  it('retries transient failures with growing, capped waits until one succeeds', async () => {
    const r = recorder(() => 1);
    let calls = 0;
    const got = await retry(
      async (attempt) => {
        expect(attempt).toBe(calls++);
        if (calls < 5) throw throttled();
        return 'done';
      },
      { maxAttempts: 8, baseDelay: 10, maxDelay: 50, ...r },
    );
    expect(got).toBe('done');
    expect(calls).toBe(5);
    expect(r.waits).toEqual([10, 20, 40, 50]);
  });

  it('gives up after maxAttempts with the last failure, untouched', async () => {
    const r = recorder();
    const errors: Error[] = [];
    const retried: number[] = [];
    const err = await retry(
      async () => {
        const e = throttled();
        errors.push(e);
        throw e;
      },
      { maxAttempts: 3, baseDelay: 1, maxDelay: 1, onRetry: (_e, n) => retried.push(n), ...r },
    ).catch((e: unknown) => e);
    expect(errors).toHaveLength(3);
    expect(err).toBe(errors[2]);
    expect(retried).toEqual([1, 2]);
    expect(r.waits).toHaveLength(2);
  });

  it('does not retry a failure that is not transient (core isTransient), nor a non-error thrown value', async () => {
    for (const thrown of [new Error('AccessDenied'), Object.freeze({ code: 42 }), 'text']) {
      const r = recorder();
      let calls = 0;
      const err = await retry(
        async () => {
          calls++;
          throw thrown;
        },
        { maxAttempts: 5, baseDelay: 1, maxDelay: 1, ...r },
      ).catch((e: unknown) => e);
      expect(err).toBe(thrown);
      expect(calls).toBe(1);
      expect(r.waits).toEqual([]);
    }
  });

  it('asks `retryable` instead when given one', async () => {
    const r = recorder();
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error('conflict');
        },
        { maxAttempts: 4, baseDelay: 1, maxDelay: 1, retryable: (e) => (e as Error).message === 'conflict', ...r },
      ),
    ).rejects.toThrow('conflict');
    expect(calls).toBe(4);
  });
});
