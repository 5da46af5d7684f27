import { fileSource, MemorySink, pipeline, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';

type Ev = { amount: number; kind: string };
const events: Ev[] = Array.from({ length: 60 }, (_, i) => ({ amount: (i * 37) % 250, kind: i % 2 ? 'a' : 'b' }));

function build() {
  const big = new MemorySink<Ev>();
  const mid = new MemorySink<{ m: number }>();
  const p = pipeline('t')
    .source(fileSource<Ev>({ path: 'x' }))
    .branch([
      { when: (e) => e.amount > 200, steps: (b) => b.sink(big) },
      { when: 'event.amount > 100', steps: (b) => b.map((e) => ({ m: e.amount })).sink(mid) },
    ])
    .build();
  return { p, big, mid };
}

describe('branch', () => {
  it('routes nothing for empty input', async () => {
    const { p, big, mid } = build();
    const run = await testPipeline(p, []);
    expect([run.output, big.values, mid.values]).toEqual([[], [], []]);
  });

  it('sends one record down the first matching route only', async () => {
    const { p, big, mid } = build();
    const run = await testPipeline(p, [{ amount: 220, kind: 'a' }]);
    expect(big.values).toEqual([{ amount: 220, kind: 'a' }]);
    expect(mid.values).toEqual([]);
    expect(run.output).toEqual([]);
  });

  it('splits many records: first match wins, unmatched records continue', async () => {
    const { p, big, mid } = build();
    const run = await testPipeline(p, events, { batchSize: 11 });
    expect(big.values).toEqual(events.filter((e) => e.amount > 200));
    expect(mid.values).toEqual(events.filter((e) => e.amount > 100 && e.amount <= 200).map((e) => ({ m: e.amount })));
    expect(run.output).toEqual(events.filter((e) => e.amount <= 100));
    expect(run.results.reduce((n, r) => n + r.recordsOut, 0)).toBe(big.values.length + mid.values.length);
  });

  it('dead-letters a record whose `when` throws, and goes on', async () => {
    const sink = new MemorySink();
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .branch([
        {
          when: (e) => {
            if (e.kind === 'a') throw new Error('bad route');
            return true;
          },
          steps: (b) => b.sink(sink),
        },
      ])
      .build();
    const run = await testPipeline(p, events.slice(0, 4));
    expect(sink.values).toEqual([events[0], events[2]]);
    expect(run.deadLetters.map((d) => [d.step, d.sequenceNumber])).toEqual([
      ['branch-0', '2'],
      ['branch-0', '4'],
    ]);
  });
});
