import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileSource, pipeline, staticLookup, testPipeline, toBatches } from '@tributary/core';
import type { Lookup } from '@tributary/core/spi';
import { VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { yamlPipeline } from '../helpers.js';

type Ev = { user: string; n: number };
const profiles: Record<string, { name: string }> = { a: { name: 'Ann' }, b: { name: 'Bob' }, c: { name: 'Cy' } };

/** A lookup that records every call. */
class CountingLookup implements Lookup {
  calls: string[][] = [];
  fail = false;
  async get(keys: readonly string[]) {
    if (this.fail) throw new Error('table unavailable');
    this.calls.push([...keys]);
    const out = new Map<string, unknown>();
    for (const k of keys) if (profiles[k]) out.set(k, profiles[k]);
    return out;
  }
}

function enriched(
  lookup: Lookup,
  options: { onMissing?: 'keep' | 'drop' | 'dead-letter'; cache?: { maxEntries?: number; ttl?: string } } = {},
) {
  return pipeline('t')
    .source(fileSource<Ev>({ path: 'x' }))
    .enrich({ lookup, key: (e) => e.user, as: 'profile', ...options })
    .build();
}

const events: Ev[] = Array.from({ length: 40 }, (_, i) => ({ user: ['a', 'b', 'c', 'zz'][i % 4] as string, n: i }));

describe('enrich', () => {
  it('makes no lookup call for empty input', async () => {
    const lookup = new CountingLookup();
    expect((await testPipeline(enriched(lookup), [])).output).toEqual([]);
    expect(lookup.calls).toEqual([]);
  });

  it('joins one record', async () => {
    const run = await testPipeline(enriched(new CountingLookup()), [{ user: 'a', n: 1 }]);
    expect(run.output).toEqual([{ user: 'a', n: 1, profile: { name: 'Ann' } }]);
  });

  it('fetches each distinct key once per batch and serves later batches from the cache', async () => {
    const lookup = new CountingLookup();
    const run = await testPipeline(enriched(lookup), events, { batchSize: 10 });
    expect(lookup.calls).toEqual([['a', 'b', 'c', 'zz']]);
    expect(run.output).toEqual(events.map((e) => ({ ...e, profile: profiles[e.user] ?? null })));
  });

  it('honours onMissing: drop and dead-letter', async () => {
    const drop = await testPipeline(enriched(new CountingLookup(), { onMissing: 'drop' }), events);
    expect(drop.output).toHaveLength(30);
    expect(drop.deadLetters).toEqual([]);
    const dl = await testPipeline(enriched(new CountingLookup(), { onMissing: 'dead-letter' }), events);
    expect(dl.output).toHaveLength(30);
    expect(dl.deadLetters).toHaveLength(10);
    expect(dl.deadLetters[0]).toMatchObject({ reason: 'missing-lookup', step: 'enrich-0', sequenceNumber: '4' });
  });

  it('bounds the cache: with room for one key, keys are fetched again', async () => {
    const lookup = new CountingLookup();
    await testPipeline(enriched(lookup, { cache: { maxEntries: 1 } }), events, { batchSize: 4 });
    expect(lookup.calls.length).toBe(10);
  });

  it('expires cached entries after the TTL, on virtual time', async () => {
    const scheduler = new VirtualTimeScheduler();
    const lookup = new CountingLookup();
    const p = enriched(lookup, { cache: { ttl: '1m' } });
    const { compile } = await import('@tributary/core');
    const compiled = compile(p, { scheduler, deadLetter: { write: async () => {}, close: async () => {} } });
    const batch = toBatches([{ user: 'a', n: 1 }])[0]!;
    scheduler.schedule(() => {}, 1_000); // start the clock away from 0
    scheduler.flush();
    await compiled.process(batch);
    scheduler.schedule(() => {}, 30_000);
    scheduler.flush();
    await compiled.process(batch);
    expect(lookup.calls.length).toBe(1);
    scheduler.schedule(() => {}, 31_000);
    scheduler.flush();
    await compiled.process(batch);
    expect(lookup.calls.length).toBe(2);
  });

  it('dead-letters a record whose key function throws, and fails the batch when the lookup fails', async () => {
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .enrich({
        lookup: new CountingLookup(),
        key: (e) => {
          if (e.n === 1) throw new Error('no key');
          return e.user;
        },
        as: 'p',
      })
      .build();
    const run = await testPipeline(p, events.slice(0, 3));
    expect(run.output.map((e) => (e as Ev).n)).toEqual([0, 2]);
    expect(run.deadLetters).toMatchObject([{ reason: 'function', step: 'enrich-0', sequenceNumber: '2' }]);

    const down = new CountingLookup();
    down.fail = true;
    await expect(testPipeline(enriched(down), events.slice(0, 2))).rejects.toThrow('lookup failed: table unavailable');
  });

  it('reads static tables from a JSON object, a JSON array and JSON Lines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-enrich-'));
    await writeFile(join(dir, 'obj.json'), JSON.stringify(profiles));
    await writeFile(join(dir, 'arr.json'), JSON.stringify(Object.entries(profiles).map(([id, p]) => ({ id, ...p }))));
    await writeFile(
      join(dir, 'rows.jsonl'),
      Object.entries(profiles)
        .map(([k, p]) => JSON.stringify({ key: k, ...p }))
        .join('\n'),
    );
    const input = [{ user: 'b' }, { user: 'q' }];
    const obj = yamlPipeline(
      `version: 1\nname: t\nsource: { file: { path: x } }\nsteps:\n  - enrich: { lookup: { static: { path: obj.json } }, key: event.user, as: p }\n`,
      dir,
    );
    expect((await testPipeline(obj, input)).output).toEqual([
      { user: 'b', p: { name: 'Bob' } },
      { user: 'q', p: null },
    ]);
    const arr = pipeline('t')
      .source(fileSource<{ user: string }>({ path: 'x' }))
      .enrich({
        lookup: staticLookup<{ id: string; name: string }>({ path: join(dir, 'arr.json') }),
        key: (e) => e.user,
        as: 'p',
      })
      .build();
    expect((await testPipeline(arr, input)).output).toEqual([
      { user: 'b', p: { id: 'b', name: 'Bob' } },
      { user: 'q', p: null },
    ]);
    const rows = yamlPipeline(
      `version: 1\nname: t\nsource: { file: { path: x } }\nsteps:\n  - enrich: { lookup: { static: { path: rows.jsonl, keyField: key } }, key: event.user }\n`,
      dir,
    );
    // Without `as`, the looked-up fields are merged into the record.
    expect((await testPipeline(rows, input)).output).toEqual([{ user: 'b', key: 'b', name: 'Bob' }, { user: 'q' }]);
  });

  it('copies a record with an own `__proto__` field as a field, with the record and the looked-up value', async () => {
    // JSON.parse makes `__proto__` an own field; the copy keeps it as one and its prototype as is.
    const input = [JSON.parse('{"__proto__":{"polluted":true},"user":"a"}')];
    const lookup: Lookup = {
      get: async (keys) => new Map(keys.map((k) => [k, JSON.parse('{"__proto__":{"polluted":true},"name":"Ann"}')])),
    };
    for (const as of ['profile', undefined]) {
      const p = {
        ...yamlPipeline(
          `version: 1\nname: t\nsource: { file: { path: x } }\nsteps:\n  - enrich: { lookup: { ref: users }, key: event.user${as ? `, as: ${as}` : ''} }\n`,
        ),
        bindings: new Map([['users', lookup]]),
      };
      const [out] = (await testPipeline<Record<string, unknown>>(p, input)).output;
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect(Object.hasOwn(out as object, '__proto__')).toBe(true);
      expect((out as { polluted?: unknown }).polluted).toBeUndefined();
      expect(Object.keys(out as object)).toEqual(as ? ['__proto__', 'user', 'profile'] : ['__proto__', 'user', 'name']);
    }
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});
