// SourceBatch.mayWrite: a batch whose source says it may no longer write stops before its
// window-state, sink and dead-letter writes (FencedError), writing nothing more.
import { compile, fileSource, MemorySink, pipeline } from '@tributary/core';
import { FencedError, type SourceBatch } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';

const records = (n: number): SourceBatch['records'] =>
  Array.from({ length: n }, (_, i) => ({
    data: i % 5 === 4 ? '{not json' : JSON.stringify({ k: `k${i % 3}`, i }),
    partitionKey: `p${i}`,
    sequenceNumber: String(1000 + i),
    arrivalTime: 1_000 + i,
  }));

function build() {
  const out = new MemorySink();
  const dead = new MemorySink();
  const p = pipeline('fence')
    .source(fileSource<{ k: string; i: number }>({ path: 'x' }))
    .map((e) => ({ ...e, doubled: e.i * 2 }))
    .sink(out)
    .deadLetter(dead)
    .build();
  return { out, dead, p };
}

describe('SourceBatch.mayWrite (fencing)', () => {
  it('a fresh lease writes as without it; a lost one before the batch writes nothing and fails with FencedError', async () => {
    const { out, dead, p } = build();
    const c = compile(p);
    await c.open();
    const ok = await c.process({ shardId: 's-1', records: records(10), mayWrite: () => true });
    expect(ok.recordsOut).toBe(out.values.length);
    expect(out.values.length + dead.values.length).toBe(10);
    const before = { out: out.values.length, dead: dead.values.length };
    const err = await c.process({ shardId: 's-1', records: records(10), mayWrite: () => false }).catch((e) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect((err as FencedError).shardId).toBe('s-1');
    expect({ out: out.values.length, dead: dead.values.length }).toEqual(before);
    await c.close();
  });

  it('a lease lost between the sink write and the dead-letter write stops before the dead letters', async () => {
    const { out, dead, p } = build();
    const c = compile(p);
    await c.open();
    // Asked before state (1st), before sinks (2nd), before the dead-letter write (3rd): lost at the 3rd.
    let asked = 0;
    const err = await c.process({ shardId: 's-2', records: records(10), mayWrite: () => ++asked < 3 }).catch((e) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect(asked).toBe(3);
    const expectedOut = records(10).filter((r) => !String(r.data).startsWith('{not')).length;
    expect(out.values).toHaveLength(expectedOut);
    expect(dead.values).toHaveLength(0);
    await c.close();
  });
});
