import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileSink, fileSource, MemorySink, pipeline, type RecordEnvelope, testPipeline } from '@tributary/core';
import type { Sink } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';

describe('sink', () => {
  it('writes nothing for empty input', async () => {
    const out = new MemorySink();
    await testPipeline(
      pipeline('t')
        .source(fileSource({ path: 'x' }))
        .sink(out)
        .build(),
      [],
    );
    expect(out.batches).toBe(0);
  });

  it('writes to several sinks and passes records on', async () => {
    const a = new MemorySink();
    const b = new MemorySink();
    const input = Array.from({ length: 30 }, (_, i) => ({ i }));
    const p = pipeline('t')
      .source(fileSource<{ i: number }>({ path: 'x' }))
      .sink(a)
      .filter((e) => e.i % 2 === 0)
      .sink(b)
      .build();
    const run = await testPipeline(p, input, { batchSize: 10 });
    expect(a.values).toEqual(input);
    expect(b.values).toEqual(input.filter((e) => e.i % 2 === 0));
    expect(run.output).toEqual(b.values);
    expect(a.batches).toBe(3);
  });

  it('writes JSON Lines files that read back to the records', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-sink-'));
    const path = join(dir, 'sub', 'out.jsonl');
    const input = Array.from({ length: 25 }, (_, i) => ({ i, s: `x${i}\n"quoted"` }));
    await testPipeline(
      pipeline('t')
        .source(fileSource({ path: 'x' }))
        .sink(fileSink({ path }))
        .build(),
      input,
      { batchSize: 4 },
    );
    const lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual(input);
  });

  it('fails the batch (not acknowledged) when a sink fails, so the runtime can retry it', async () => {
    const failing: Sink = {
      write: async (_r: readonly RecordEnvelope[]) => {
        throw new Error('disk full');
      },
      close: async () => {},
    };
    const p = pipeline('t')
      .source(fileSource({ path: 'x' }))
      .sink(failing)
      .build();
    await expect(testPipeline(p, [{ a: 1 }])).rejects.toThrow('disk full');
  });
});
