// Envelope ownership: inside a fused chain map, enrich and keyBy change the envelope they are
// handed in place. Every record that leaves the chain before a later step changes it — a mid-chain
// sink, a branch route, a window and its late output, the dead-letter output — must stay as it
// was there. Each test recomputes what the escaped records must be from the input (the oracle)
// and compares the records the sinks hold once the whole run is over.
import { count, fileSource, MemorySink, pipeline, type RecordEnvelope, sum, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';

type Ev = { user: string; amount: number; ts: number };
const input: Ev[] = Array.from({ length: 60 }, (_, i) => ({
  user: `u${(i * 7) % 5}`,
  amount: (i * 37) % 100,
  ts: i * 5000,
}));
const project = (e: Ev) => ({ who: e.user, cents: e.amount * 100, ts: e.ts });

/** What a sink holds: value and key of every record, in order. */
const held = (sink: MemorySink) => sink.records.map((r: RecordEnvelope) => ({ value: r.value, key: r.key }));

describe('envelope ownership', () => {
  it('a mid-chain sink keeps the records as they were there, whatever map and keyBy do after it', async () => {
    const before = new MemorySink();
    const after = new MemorySink();
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .keyBy((e) => e.user)
      .sink(before)
      .map(project)
      .keyBy((e) => `k${e.cents}`)
      .sink(after)
      .map((e) => ({ n: e.cents }))
      .build();
    const run = await testPipeline(p, input, { batchSize: 16 });
    expect(held(before)).toEqual(input.map((e) => ({ value: e, key: e.user })));
    expect(held(after)).toEqual(input.map((e) => ({ value: project(e), key: `k${e.amount * 100}` })));
    expect(run.output).toEqual(input.map((e) => ({ n: e.amount * 100 })));
  });

  it('a sink before enrich and flatMap keeps its records as they were', async () => {
    const before = new MemorySink();
    const lookup = {
      async get(keys: readonly string[]) {
        return new Map(keys.map((k) => [k, { plan: `plan-${k}` }]));
      },
    };
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .sink(before)
      .enrich({ lookup, key: (e) => e.user, as: 'profile' })
      .map((e) => ({ user: (e as Ev).user, twice: [1, 2] }))
      .flatMap((e) => e.twice.map((n) => ({ user: e.user, n })))
      .build();
    const run = await testPipeline(p, input, { batchSize: 16 });
    expect(held(before)).toEqual(input.map((e) => ({ value: e, key: undefined })));
    expect(run.output).toEqual(input.flatMap((e) => [1, 2].map((n) => ({ user: e.user, n }))));
  });

  it('a branch route keeps its records as they were, while its own later steps and the main steps map them', async () => {
    const routeStart = new MemorySink();
    const routeEnd = new MemorySink();
    const main = new MemorySink();
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .keyBy((e) => e.user)
      .branch([
        {
          when: (e) => e.amount >= 50,
          steps: (b) =>
            b
              .sink(routeStart)
              .map(project)
              .keyBy((e) => e.who.toUpperCase())
              .sink(routeEnd),
        },
      ])
      .sink(main)
      .map(project)
      .keyBy(() => 'other')
      .build();
    const run = await testPipeline(p, input, { batchSize: 16 });
    const routed = input.filter((e) => e.amount >= 50);
    const rest = input.filter((e) => e.amount < 50);
    expect(held(routeStart)).toEqual(routed.map((e) => ({ value: e, key: e.user })));
    expect(held(routeEnd)).toEqual(routed.map((e) => ({ value: project(e), key: e.user.toUpperCase() })));
    expect(held(main)).toEqual(rest.map((e) => ({ value: e, key: e.user })));
    expect(run.output).toEqual(rest.map(project));
  });

  it('a window after keyBy and map aggregates the mapped records; its late output and results stay as emitted', async () => {
    // Batches of 30: the last five records come after the watermark passed their minute (late).
    const lateInput: Ev[] = Array.from({ length: 5 }, (_, j) => ({ user: `u${j}`, amount: j + 1, ts: 1000 * j }));
    const all = [...input, ...lateInput];
    const raw = new MemorySink();
    const late = new MemorySink();
    const windows = new MemorySink();
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .eventTime((e) => e.ts)
      .sink(raw)
      .keyBy((e) => e.user)
      .map(project)
      .window({ tumbling: '1m', aggregate: { n: count(), total: sum((e) => e.cents) }, late })
      .sink(windows)
      .map((w) => ({ changed: w.key }))
      .keyBy(() => 'changed')
      .build();
    const run = await testPipeline(p, all, { batchSize: 30 });

    // The oracle: a naive aggregation of the mapped in-order records by user and minute.
    const expected = new Map<
      string,
      { key: string; windowStart: number; windowEnd: number; n: number; total: number }
    >();
    for (const e of input) {
      const start = e.ts - (e.ts % 60_000);
      const id = `${e.user}|${start}`;
      const w = expected.get(id) ?? { key: e.user, windowStart: start, windowEnd: start + 60_000, n: 0, total: 0 };
      w.n++;
      w.total += e.amount * 100;
      expected.set(id, w);
    }
    const order = (a: { key: unknown; windowStart: number }, b: { key: unknown; windowStart: number }) =>
      a.windowStart - b.windowStart || String(a.key).localeCompare(String(b.key));
    const got = windows.records.map((r) => r.value as { key: string; windowStart: number });
    expect([...got].sort(order)).toEqual([...expected.values()].sort(order));
    // Each window result is keyed by its window key, and so partitioned.
    expect(windows.records.map((r) => [r.key, r.partitionKey])).toEqual(got.map((w) => [w.key, w.key]));
    expect(held(late)).toEqual(lateInput.map((e) => ({ value: project(e), key: e.user })));
    expect(held(raw)).toEqual(all.map((e) => ({ value: e, key: undefined })));
    expect(run.output.length).toBe(expected.size);
    expect(run.deadLetters).toEqual([]);
  });

  it('a dead letter records the value the record had at the failing step; a sink before keeps the input', async () => {
    const before = new MemorySink();
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .sink(before)
      .keyBy((e) => e.user)
      .map(project)
      .filter((e) => {
        if (e.cents >= 9000) throw new Error(`too much: ${e.cents}`);
        return true;
      })
      .map((e) => ({ after: e.cents }))
      .keyBy((e) => (e.after >= 8000 ? (null as unknown as string) : 'ok'))
      .map(() => ({ last: true }))
      .build();
    const run = await testPipeline(p, input, { batchSize: 16 });
    const failing = input.filter((e) => e.amount >= 90);
    const badKey = input.filter((e) => e.amount >= 80 && e.amount < 90);
    expect(run.deadLetters.map((d) => [d.step, d.value])).toEqual(
      input
        .filter((e) => e.amount >= 80)
        .map((e) => (e.amount >= 90 ? ['filter-0', project(e)] : ['keyBy-1', { after: e.amount * 100 }])),
    );
    expect(failing.length).toBeGreaterThan(0);
    expect(badKey.length).toBeGreaterThan(0);
    expect(held(before)).toEqual(input.map((e) => ({ value: e, key: undefined })));
    expect(run.output).toEqual(input.filter((e) => e.amount < 80).map(() => ({ last: true })));
  });
});
