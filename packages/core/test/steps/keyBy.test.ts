import { fileSource, pipeline, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';

describe('keyBy', () => {
  const p = stepsPipeline('  - keyBy: event.user');
  const keys = async (input: unknown[]) =>
    (await testPipeline(p, input)).results.flatMap((r) => (r.tail ?? []).map((e) => e.key));

  it('handles empty input', async () => {
    expect(await keys([])).toEqual([]);
  });

  it('sets the key of one record and leaves its value unchanged', async () => {
    const run = await testPipeline(p, [{ user: 'a', x: 1 }]);
    expect(run.output).toEqual([{ user: 'a', x: 1 }]);
    expect(run.results[0]?.tail?.[0]?.key).toBe('a');
  });

  it('keys many records', async () => {
    const input = Array.from({ length: 25 }, (_, i) => ({ user: `u${i % 5}` }));
    expect(await keys(input)).toEqual(input.map((e) => e.user));
  });

  it('dead-letters keys that are not scalars and keys whose function throws', async () => {
    const run = await testPipeline(p, [{ user: { id: 1 } }, { user: null }, { user: 3 }]);
    expect(run.results[0]?.tail?.map((e) => e.key)).toEqual([3]);
    expect(run.deadLetters.map((d) => d.sequenceNumber)).toEqual(['1', '2']);
    const fn = pipeline('t')
      .source(fileSource<{ user: string }>({ path: 'x' }))
      .keyBy((e) => {
        if (e.user === 'x') throw new Error('no key');
        return e.user;
      })
      .build();
    const r2 = await testPipeline(fn, [{ user: 'x' }, { user: 'y' }]);
    expect(r2.output).toEqual([{ user: 'y' }]);
    expect(r2.deadLetters).toMatchObject([{ step: 'keyBy-0', reason: 'function', error: 'no key' }]);
  });
});
