import {
  compile,
  type DeadLetterRecord,
  fileSource,
  MemorySink,
  pipeline,
  type SourceBatch,
  testPipeline,
  toBatches,
} from '@tributary/core';
import { firstValueFrom, from, Observable, Subject, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { stepsPipeline, yamlPipeline } from './helpers.js';

describe('compiled pipeline', () => {
  it('keeps the envelope: shard, sequence, sub-sequence, partition key and times reach the sinks', async () => {
    const out = new MemorySink();
    const p = pipeline('t')
      .source(fileSource<{ n: number }>({ path: 'x' }))
      .map((e) => ({ m: e.n }))
      .sink(out)
      .build();
    const batch: SourceBatch = {
      shardId: 'shardId-000000000007',
      records: [
        { data: '{"n":1}', partitionKey: 'pk-a', sequenceNumber: '4960', subSequenceNumber: 2, arrivalTime: 1700 },
        { value: { n: 2 }, partitionKey: 'pk-b', sequenceNumber: '4961', arrivalTime: 1800 },
      ],
    };
    const run = await testPipeline(p, { batches: [batch] });
    expect(out.records.map((e) => JSON.parse(JSON.stringify(e)))).toEqual([
      {
        value: { m: 1 },
        partitionKey: 'pk-a',
        shardId: 'shardId-000000000007',
        sequenceNumber: '4960',
        subSequenceNumber: 2,
        eventTime: 1700,
        arrivalTime: 1700,
        key: undefined,
      },
      {
        value: { m: 2 },
        partitionKey: 'pk-b',
        shardId: 'shardId-000000000007',
        sequenceNumber: '4961',
        subSequenceNumber: undefined,
        eventTime: 1800,
        arrivalTime: 1800,
        key: undefined,
      },
    ]);
    expect(run.results[0]).toMatchObject({
      shardId: 'shardId-000000000007',
      checkpoint: '4961',
      recordsIn: 2,
      recordsOut: 2,
    });
  });

  it('dead-letters undecodable, oversize and data-less records with shard, sequence and reason; the batch goes on', async () => {
    const p = stepsPipeline('  - map: { v: event.v }');
    const big = `{"v":"${'x'.repeat(1024 * 1024)}"}`;
    const batch: SourceBatch = {
      shardId: 's1',
      records: [
        { data: '{"v":1}', partitionKey: 'k', sequenceNumber: '1', arrivalTime: 0 },
        { data: '{"v":', partitionKey: 'k', sequenceNumber: '2', arrivalTime: 0, line: 2 },
        { data: big, partitionKey: 'k', sequenceNumber: '3', arrivalTime: 0 },
        { data: new Uint8Array([0xff, 0xfe, 0x01]), partitionKey: 'k', sequenceNumber: '4', arrivalTime: 0 },
        { partitionKey: 'k', sequenceNumber: '5', arrivalTime: 0 },
        { data: new TextEncoder().encode('{"v":6}'), partitionKey: 'k', sequenceNumber: '6', arrivalTime: 0 },
      ],
    };
    const run = await testPipeline(p, { batches: [batch] });
    expect(run.output).toEqual([{ v: 1 }, { v: 6 }]);
    const dl = run.deadLetters.map((d) => [d.sequenceNumber, d.reason, d.step]);
    expect(dl).toEqual([
      ['2', 'decode', 'source'],
      ['3', 'decode', 'source'],
      ['4', 'decode', 'source'],
      ['5', 'decode', 'source'],
    ]);
    expect(run.deadLetters[0]).toMatchObject({
      line: 2,
      data: '{"v":',
      shardId: 's1',
      partitionKey: 'k',
      pipeline: 'test',
    });
    expect(run.deadLetters[1]?.error).toContain('exceeds');
    // Bytes that are not UTF-8 are kept as base64 so the record can be replayed exactly.
    expect(run.deadLetters[2]?.data).toBe(Buffer.from([0xff, 0xfe, 0x01]).toString('base64'));
  });

  it('checks declared fields and dead-letters records that do not match', async () => {
    const p = stepsPipeline('  - map: { u: event.user }', 'fields: { user: string, n: integer?, ts: timestamp? }\n');
    const run = await testPipeline(p, [
      { user: 'a' },
      { user: 1 },
      { n: 2 },
      { user: 'b', n: 1.5 },
      [1],
      { user: 'c', ts: '2026-01-01T00:00:00Z', n: 3 },
    ]);
    expect(run.output).toEqual([{ u: 'a' }, { u: 'c' }]);
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason, d.error])).toEqual([
      ['2', 'schema', 'field `user` should be string, got number'],
      ['3', 'schema', 'field `user` is missing'],
      ['4', 'schema', 'field `n` should be integer, got number'],
      ['5', 'schema', 'record is not a JSON object'],
    ]);
  });

  it('takes event time from the expression (epoch ms or ISO-8601), else arrival time', async () => {
    const p = stepsPipeline('  - map: event', 'eventTime: event.ts\n');
    const run = await testPipeline(p, [{ ts: 1234 }, { ts: '2026-11-01T12:00:00.500Z' }, { ts: 'yesterday' }, {}], {
      arrivalTime: 99,
    });
    const times = run.results.flatMap((r) => (r.tail ?? []).map((e) => [e.eventTime, e.arrivalTime]));
    expect(times).toEqual([
      [1234, 99],
      [Date.parse('2026-11-01T12:00:00.500Z'), 99],
    ]);
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason, d.step])).toEqual([
      ['3', 'event-time', 'eventTime'],
      ['4', 'event-time', 'eventTime'],
    ]);
    const noTime = await testPipeline(stepsPipeline('  - map: event'), [{ a: 1 }], { arrivalTime: 42 });
    expect(noTime.results[0]?.tail?.[0]?.eventTime).toBe(42);
  });

  it('dead-letters event times beyond the Date range (±8.64e15 ms) as event-time; a window run goes on', async () => {
    const p = stepsPipeline(
      '  - window: { key: event.k, tumbling: 10, aggregate: { n: count() } }',
      'eventTime: event.ts\n',
    );
    const run = await testPipeline(p, [
      { k: 'a', ts: 5 },
      { k: 'a', ts: 8.64e15 + 1 },
      { k: 'a', ts: -9e15 },
      { k: 'a', ts: 8.64e15 },
      { k: 'a', ts: 7 },
    ]);
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason])).toEqual([
      ['2', 'event-time'],
      ['3', 'event-time'],
    ]);
    expect(run.output).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10, n: 2 },
      { key: 'a', windowStart: 8.64e15, windowEnd: 8.64e15 + 10, n: 1 },
    ]);
    // The last record (7) came after 8.64e15 moved the watermark: late, with a readable reason.
    const late = await testPipeline(
      stepsPipeline('  - window: { key: event.k, tumbling: 10, aggregate: { n: count() } }', 'eventTime: event.ts\n'),
      [
        { k: 'a', ts: 8.64e15 },
        { k: 'a', ts: 1 },
      ],
      { batchSize: 1 },
    );
    expect(late.deadLetters.map((d) => [d.reason, d.error])).toEqual([
      ['late', expect.stringContaining('event time 1970-01-01T00:00:00.001Z')],
    ]);
  });

  it('fuses stateless steps: one subscription per batch stream, no per-record subscriptions', async () => {
    let subscriptions = 0;
    const counted = <T>(src: Observable<T>) =>
      new Observable<T>((sub) => {
        subscriptions++;
        return src.subscribe(sub);
      });
    const p = stepsPipeline(
      '  - filter: event.n % 2 == 0\n  - map: { n: event.n }\n  - keyBy: event.n\n  - flatMap: "[event, event]"',
    );
    const compiled = compile(p, { deadLetter: new MemorySink(), collectTail: true });
    const batches = toBatches(
      Array.from({ length: 500 }, (_, n) => ({ n })),
      { batchSize: 100 },
    );
    const results = await firstValueFrom(
      counted(from(batches)).pipe(compiled.operator({ flushAtEnd: false }), toArray()),
    );
    expect(subscriptions).toBe(1);
    expect(results.map((r) => r.tail?.length)).toEqual([100, 100, 100, 100, 100]);
  });

  it('stops when unsubscribed early: later batches are not processed', async () => {
    const out = new MemorySink();
    const p = pipeline('t')
      .source(fileSource({ path: 'x' }))
      .sink(out)
      .build();
    const compiled = compile(p, { deadLetter: new MemorySink() });
    const input = new Subject<SourceBatch>();
    const seen: number[] = [];
    const sub = input.pipe(compiled.operator()).subscribe((r) => seen.push(r.recordsIn));
    const batches = toBatches([{ a: 1 }, { a: 2 }, { a: 3 }], { batchSize: 1 });
    input.next(batches[0]!);
    await new Promise((r) => setTimeout(r, 10));
    sub.unsubscribe();
    input.next(batches[1]!);
    input.next(batches[2]!);
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual([1]);
    expect(out.values).toEqual([{ a: 1 }]);
    expect(input.observed).toBe(false);
  });

  it('runs batches of different shards independently (no shared per-batch state)', async () => {
    const dl = new MemorySink<DeadLetterRecord>();
    const p = stepsPipeline('  - map: { v: event.v * 2 }');
    const compiled = compile(p, { deadLetter: dl, collectTail: true });
    const a = toBatches([{ v: 1 }, { x: 1 }], { shardId: 'a' })[0]!;
    const b = toBatches([{ v: 10 }, { v: 20 }], { shardId: 'b' })[0]!;
    const [ra, rb] = await Promise.all([compiled.process(a), compiled.process(b)]);
    expect(ra.tail?.map((e) => e.value)).toEqual([{ v: 2 }]);
    expect(rb.tail?.map((e) => e.value)).toEqual([{ v: 20 }, { v: 40 }]);
    expect(dl.values.map((d) => d.shardId)).toEqual(['a']);
  });

  it('describes the graph with node names in definition order', () => {
    const p = yamlPipeline(`version: 1
name: demo
source: { file: { path: in.jsonl } }
eventTime: event.ts
steps:
  - filter: event.ok
  - branch:
      routes:
        - when: event.big
          steps:
            - map: { b: event.big }
            - sink: { file: { path: big.jsonl } }
  - sink: { name: main-out, file: { path: out.jsonl } }
`);
    expect(compile(p).describe()).toBe(
      [
        'pipeline demo',
        '  source       file in.jsonl',
        '  event time   event.ts',
        '  filter-0     filter   event.ok',
        '  branch-0     branch   event.big',
        '    map-0        map      { b }',
        '    sink-0       sink     file big.jsonl',
        '  main-out     sink     file out.jsonl',
        '  dead-letter  stderr standard error',
      ].join('\n'),
    );
  });

  it('refuses duplicate node names and unbound references before reading any record', () => {
    const named = stepsPipeline('  - name: a\n    filter: "true"\n  - name: a\n    map: event');
    expect(() => compile(named)).toThrow('duplicate node name `a`');
    const unbound = {
      spec: { ...stepsPipeline('  - filter: "true"').spec, steps: [{ filter: { fn: './x.js#f' } }] },
      bindings: new Map(),
      baseDir: '.',
    };
    expect(() => compile(unbound as never)).toThrow('function `./x.js#f` is not defined');
  });
});
