import { compile, count, fileSource, MemorySink, pipeline, type SourceBatch, sum } from '@tributary/core';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';
import { timeline } from '../timeline.js';
import { batch, type Ev, harness, virtualClock } from '../window-helpers.js';

const MIN = 60_000;
const windowed = (window: string, extra = '') =>
  stepsPipeline(`  - window:\n${window.replace(/^/gm, '      ')}\n`, `eventTime: event.t\n${extra}`);
const sumByKey = (kind: string, more = '') =>
  windowed(`key: event.k\n${kind}\naggregate: { n: count(), s: sum(event.v) }\n${more}`);

describe('window: tumbling', () => {
  it('emits nothing for no input, even when flushed', async () => {
    await timeline(sumByKey('tumbling: 1m')).end().expectWindows([]).run();
  });

  it('refuses an aggregate named like a field of the window record, in YAML and in TypeScript', () => {
    expect(() => windowed('tumbling: 1m\naggregate: { windowStart: count() }')).toThrow(
      /^8:20: `windowStart` is reserved: expected a name other than key, windowStart, windowEnd/,
    );
    const typed = () =>
      compile(
        pipeline('p')
          .source(fileSource({ path: '-' }))
          .window({ tumbling: '1m', aggregate: { key: count() } })
          .sink(new MemorySink())
          .build(),
      );
    expect(typed).toThrow(/`key` is reserved/);
  });

  it("emits one record's window on flush at end of input", async () => {
    await timeline(sumByKey('tumbling: 1m'))
      .at('s', '00:01:30', { k: 'a', v: 4 })
      .expectWindows([])
      .end()
      .expectWindows([{ key: 'a', start: '00:01', end: '00:02', n: 1, s: 4 }])
      .run();
  });

  it('fires each window once, when the watermark passes its end, keyed', async () => {
    await timeline(sumByKey('tumbling: 1m'))
      .at('s', '00:00:01', { k: 'a', v: 1 })
      .at('s', '00:00:02', { k: 'b', v: 2 })
      .at('s', '00:00:59.999', { k: 'a', v: 3 })
      .expectWindows([])
      .at('s', '00:01:00', { k: 'a', v: 10 }) // the watermark reaches 1m: [0, 1m) closes
      .expectWindows([
        { key: 'a', start: '00:00', end: '00:01', n: 2, s: 4 },
        { key: 'b', start: '00:00', end: '00:01', n: 1, s: 2 },
      ])
      .end()
      .expectWindows([{ key: 'a', start: '00:01', end: '00:02', n: 1, s: 10 }])
      .run();
  });

  it('uses the keyBy key by default, and one global key (null) without either', async () => {
    const keyed = stepsPipeline(
      '  - keyBy: event.k\n  - window: { tumbling: 1m, aggregate: { n: count() } }',
      'eventTime: event.t\n',
    );
    await timeline(keyed)
      .at('s', 1, { k: 'x', v: 0 })
      .at('s', 2, { k: 'y', v: 0 })
      .end()
      .expectWindows([
        { key: 'x', start: '00:00', end: '00:01', n: 1 },
        { key: 'y', start: '00:00', end: '00:01', n: 1 },
      ])
      .run();
    await timeline(windowed('tumbling: 1m\naggregate: { n: count() }'))
      .at('s', 1, { k: 'x', v: 0 })
      .at('s', 2, { k: 'y', v: 0 })
      .end()
      .expectWindows([{ key: null, start: '00:00', end: '00:01', n: 2 }])
      .run();
  });

  it('holds windows until outOfOrderness allows, and accepts records within allowedLateness', async () => {
    await timeline(sumByKey('tumbling: 1m', 'outOfOrderness: 10s\nallowedLateness: 30s'))
      .at('s', '00:00:50', { k: 'a', v: 1 })
      .batch()
      .at('s', '00:01:05', { k: 'a', v: 1 }) // watermark 55s: [0, 1m) open
      .expectWindows([])
      .at('s', '00:00:05', { k: 'a', v: 5 }) // on time (watermark 55s)
      .at('s', '00:01:35', { k: 'a', v: 1 }) // watermark 85s
      .expectWindows([])
      .at('s', '00:00:10', { k: 'a', v: 7 }) // late, but within the allowed lateness
      .at('s', '00:01:41', { k: 'a', v: 1 }) // watermark 91s ≥ 1m + 30s: [0, 1m) closes
      .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 3, s: 13 }])
      .at('s', '00:00:20', { k: 'a', v: 100 }) // too late
      .expectLate([['s', '00:00:20', { k: 'a', v: 100 }]])
      .end()
      .expectWindows([{ key: 'a', start: '00:01', end: '00:02', n: 3, s: 3 }])
      .run();
  });

  it('sends too-late records to the configured late sink instead of the dead-letter output', async () => {
    const lateSink = new MemorySink<Ev>();
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .eventTime((e) => e.t)
      .window({ key: (e) => e.k, tumbling: '1m', late: lateSink, aggregate: { n: count() } })
      .build();
    const h = harness(p);
    await h.process(batch('s', [{ k: 'a', t: 2 * MIN, v: 0 }], 1));
    await h.process(batch('s', [{ k: 'a', t: 1000, v: 0 }], 2));
    expect(lateSink.values).toEqual([{ k: 'a', t: 1000, v: 0 }]);
    expect(h.dead.values).toEqual([]);
  });

  it('emit: updates emits after each changing batch and once more on close', async () => {
    await timeline(sumByKey('tumbling: 1m', 'emit: updates'))
      .at('s', 1, { k: 'a', v: 1 })
      .at('s', 2, { k: 'a', v: 2 })
      .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 2, s: 3 }])
      .at('s', 3, { k: 'a', v: 3 })
      .batch()
      .at('s', '00:01:00.001', { k: 'b', v: 0 })
      .expectWindows([
        { key: 'a', start: '00:00', end: '00:01', n: 3, s: 6 },
        { key: 'b', start: '00:01', end: '00:02', n: 1, s: 0 },
        { key: 'a', start: '00:00', end: '00:01', n: 3, s: 6 }, // on close
      ])
      .run();
  });

  it('dead-letters a record whose window key or aggregate input fails, and goes on', async () => {
    await timeline(windowed('key: event.k\ntumbling: 1m\naggregate: { s: sum(event.v * 2) }'))
      .at('s', 1, { k: 'a', v: 1 })
      .at('s', 1, { k: { no: 1 }, v: 1 })
      .at('s', 1, { k: 'a' })
      .end()
      .expectWindows([{ key: 'a', start: '00:00', end: '00:01', s: 2 }])
      .expectDeadLetters([
        ['s', 1, { k: { no: 1 }, v: 1 }, { reason: 'expression', step: 'window-0' }],
        ['s', 1, { k: 'a' }, { reason: 'expression', step: 'window-0' }],
      ])
      .run();
  });
});

describe('window: hopping, sliding, session', () => {
  it('hopping: a record belongs to size/every windows', async () => {
    await timeline(sumByKey('hopping: { size: 3m, every: 1m }'))
      .at('s', '00:02:30', { k: 'a', v: 1 })
      .at('s', '00:02:50', { k: 'a', v: 2 })
      .end()
      .expectWindows([
        { key: 'a', start: '00:00', end: '00:03', n: 2, s: 3 },
        { key: 'a', start: '00:01', end: '00:04', n: 2, s: 3 },
        { key: 'a', start: '00:02', end: '00:05', n: 2, s: 3 },
      ])
      .run();
  });

  it('sliding: one window per record, looking back [t − size, t]', async () => {
    await timeline(sumByKey('sliding: 10s'))
      .at('s', '00:00:01', { k: 'a', v: 1 })
      .at('s', '00:00:05', { k: 'a', v: 2 })
      .at('s', '00:00:11', { k: 'a', v: 4 })
      .at('s', '00:00:30', { k: 'a', v: 8 })
      .expectWindows([
        { key: 'a', start: '-00:00:09', end: '00:00:01.001', n: 1, s: 1 },
        { key: 'a', start: '-00:00:05', end: '00:00:05.001', n: 2, s: 3 },
        { key: 'a', start: '00:00:01', end: '00:00:11.001', n: 3, s: 7 },
      ])
      .end()
      .expectWindows([{ key: 'a', start: '00:00:20', end: '00:00:30.001', n: 1, s: 8 }])
      .run();
  });

  it('session: records within the gap form one session; a record bridging two merges them', async () => {
    await timeline(sumByKey('session: { gap: 10s }', 'outOfOrderness: 1m'))
      .at('s', '00:00:00', { k: 'a', v: 1 })
      .at('s', '00:00:05', { k: 'a', v: 1 })
      .at('s', '00:00:30', { k: 'a', v: 10 })
      .expectWindows([])
      .at('s', '00:00:15', { k: 'a', v: 100 }) // bridges [0, 15s) and [30s, 40s)
      .at('s', '00:00:22', { k: 'a', v: 100 })
      .batch()
      .at('s', '00:03:20', { k: 'a', v: 1000 }) // watermark 140s closes the merged session
      .expectWindows([{ key: 'a', start: '00:00', end: '00:00:40', n: 5, s: 212 }])
      .end()
      .expectWindows([{ key: 'a', start: '00:03:20', end: '00:03:30', n: 1, s: 1000 }])
      .run();
  });

  it('session: a record of a closed session with nothing open to join is late', async () => {
    await timeline(sumByKey('session: { gap: 10s }'))
      .at('s', '00:01:40', { k: 'a', v: 1 })
      .batch()
      .at('s', '00:00:01', { k: 'a', v: 1 })
      .expectLate([['s', '00:00:01', { k: 'a', v: 1 }]])
      .end()
      .expectWindows([{ key: 'a', start: '00:01:40', end: '00:01:50', n: 1, s: 1 }])
      .run();
  });
});

describe('window: watermarks across shards and idle time', () => {
  it('waits for the slowest shard, and stops waiting for a shard idle beyond idleTimeout (virtual time)', async () => {
    await timeline(sumByKey('tumbling: 1m', 'idleTimeout: 30s'))
      .at('fast', '00:00:01', { k: 'a', v: 1 })
      .at('slow', '00:00:02', { k: 'a', v: 1 })
      .at('fast', '00:05:00', { k: 'a', v: 1 })
      .expectWindows([]) // the slow shard holds the watermark at 2s
      .idle('20s')
      .expectWindows([]) // the slow shard idle 20s < 30s
      .idle('1m')
      .expectWindows([]) // idle 80s: its watermark moves 50s past 2s; still < 1m
      .idle('20s')
      .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 2, s: 2 }]) // idle 100s: 2s + 70s ≥ 1m
      .end()
      .expectWindows([{ key: 'a', start: '00:05', end: '00:06', n: 1, s: 1 }])
      .run();
  });

  it('several shards: a window closes when the lowest watermark passes it; a record behind it is late', async () => {
    await timeline({
      window: { key: 'event.user', tumbling: '1m', outOfOrderness: '5s', aggregate: { n: 'count()' } },
    })
      .at('shard-0', '00:00:10', { user: 'a' })
      .at('shard-1', '00:00:50', { user: 'a' })
      .at('shard-0', '00:01:20', { user: 'a' }) // shard 0 at 75s, shard 1 at 45s: [0, 1m) open
      .expectWindows([])
      .at('shard-1', '00:01:10', { user: 'a' }) // shard 1 at 65s: the lowest watermark passes 1m
      .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 2 }])
      .at('shard-0', '00:00:30', { user: 'a' })
      .expectLate([['shard-0', '00:00:30', { user: 'a' }]])
      .end()
      .expectWindows([{ key: 'a', start: '00:01', end: '00:02', n: 2 }])
      .run();
  });

  it("closes windows of an idle stream through the operator's own ticks (TestScheduler)", async () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const advanceTo = virtualClock(scheduler);
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .eventTime((e) => e.t)
      .window({ key: (e) => e.k, tumbling: '1m', idleTimeout: '10s', aggregate: { n: count(), s: sum((e) => e.v) } })
      .build();
    const h = harness(p, scheduler);
    const input = new Subject<SourceBatch>();
    const emitted: { at: number; value: unknown }[] = [];
    input.pipe(h.compiled.operator()).subscribe((r) => {
      for (const e of r.tail ?? []) emitted.push({ at: scheduler.now(), value: e.value });
    });
    input.next(batch('s', [{ k: 'a', t: 1000, v: 1 }], 1));
    await advanceTo(59_000);
    input.next(batch('s', [{ k: 'a', t: 2000, v: 2 }], 2));
    await advanceTo(120_000);
    // Idle since 59s: the watermark is 2s + (120s − 59s − 10s) = 53s, short of 1m.
    expect(emitted).toEqual([]);
    await advanceTo(130_000);
    // 2s + (130s − 59s − 10s) = 63s: a tick closes [0, 1m) with no new record and no end of input.
    expect(emitted).toEqual([{ at: 130_000, value: { key: 'a', windowStart: 0, windowEnd: MIN, n: 2, s: 3 } }]);
    input.complete();
    await advanceTo(131_000);
  });

  it('flushes every open window when a finite input ends', async () => {
    const p = sumByKey('tumbling: 1m');
    const h = harness(p);
    const results = await lastValueFrom(
      from([
        batch(
          's',
          [
            { k: 'a', t: 1, v: 1 },
            { k: 'b', t: 3 * MIN, v: 2 },
          ],
          1,
        ),
      ]).pipe(h.compiled.operator({ ticks: false }), toArray()),
    );
    expect(results.map((r) => r.phase)).toEqual(['batch', 'final']);
    // The batch's own records moved the watermark to 3m: [0, 1m) fired with it.
    expect(results[0]?.tail?.map((e) => e.value)).toEqual([{ key: 'a', windowStart: 0, windowEnd: MIN, n: 1, s: 1 }]);
    expect(results[1]?.tail?.map((e) => e.value)).toEqual([
      { key: 'b', windowStart: 3 * MIN, windowEnd: 4 * MIN, n: 1, s: 2 },
    ]);
  });
});

describe('window: exactly-once effect', () => {
  it('a replayed batch changes nothing; an overlapping replay adds only the new records', async () => {
    await timeline(sumByKey('tumbling: 1m'))
      .at('s', 1, { k: 'a', v: 1 })
      .at('s', 2, { k: 'a', v: 2 })
      .at('s', 3, { k: 'b', v: 4 })
      .batch()
      .redeliver('s', 1) // the same batch again
      .batch()
      .redeliver('s', 2) // redelivered from seq 2 with two new records (a bisected / re-cut batch)
      .at('s', 4, { k: 'a', v: 8 })
      .at('s', 5, { k: 'b', v: 16 })
      .end()
      .expectWindows([
        { key: 'a', start: '00:00', end: '00:01', n: 3, s: 11 },
        { key: 'b', start: '00:00', end: '00:01', n: 2, s: 20 },
      ])
      .expectLate([])
      .expectDeadLetters([])
      .run();
  });

  it('the same sequence numbers on another shard are different records', async () => {
    // Each shard's first record has sequence number 1.
    await timeline(sumByKey('tumbling: 1m'))
      .at('s1', 1, { k: 'a', v: 1 })
      .at('s2', 1, { k: 'a', v: 1 })
      .end()
      .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 2, s: 2 }])
      .run();
  });
});

describe('window: memory', () => {
  it('keeps state for open windows only and frees closed ones', async () => {
    const h = harness(sumByKey('tumbling: 1m'));
    const events: Ev[] = [];
    for (let m = 0; m < 10; m++) for (const k of ['a', 'b', 'c']) events.push({ k, t: m * MIN + 1, v: 1 });
    await h.process(batch('s', events.slice(0, 15), 1)); // minutes 0-4
    // Minutes 0-3 have closed (watermark at 4m); only minute 4's three windows are held.
    expect(h.compiled.stats()).toEqual({ openWindows: 3, storedWindows: 3 });
    expect(h.out).toHaveLength(12);
    await h.process(batch('s', events.slice(15), 16));
    expect(h.compiled.stats()).toEqual({ openWindows: 3, storedWindows: 3 });
    await h.flush();
    expect(h.compiled.stats()).toEqual({ openWindows: 0, storedWindows: 0 });
    expect(h.out).toHaveLength(30);
  });

  it('frees sliding points once no later window can use them', async () => {
    const h = harness(sumByKey('sliding: 10s'));
    await h.process(
      batch(
        's',
        Array.from({ length: 50 }, (_, i) => ({ k: 'a', t: i * 1000, v: 1 })),
        1,
      ),
    );
    // Watermark 49s: points older than 49s − 10s − 1ms are gone; the newest ones stay.
    expect(h.compiled.stats().storedWindows).toBeLessThanOrEqual(12);
    await h.flush();
    expect(h.compiled.stats()).toEqual({ openWindows: 0, storedWindows: 0 });
    expect(h.out).toHaveLength(50);
  });
});

describe('window: every kind and emit mode on virtual time (TestScheduler)', () => {
  const kinds: [string, Record<string, unknown>[]][] = [
    ['tumbling: 1m', [{ key: 'a', windowStart: 0, windowEnd: MIN, n: 2, s: 3 }]],
    [
      'hopping: { size: 2m, every: 1m }',
      [
        { key: 'a', windowStart: -MIN, windowEnd: MIN, n: 2, s: 3 },
        { key: 'a', windowStart: 0, windowEnd: 2 * MIN, n: 2, s: 3 },
      ],
    ],
    [
      'sliding: 10s',
      [
        { key: 'a', windowStart: -9000, windowEnd: 1001, n: 1, s: 1 },
        { key: 'a', windowStart: -8000, windowEnd: 2001, n: 2, s: 3 },
      ],
    ],
    ['session: { gap: 10s }', [{ key: 'a', windowStart: 1000, windowEnd: 12_000, n: 2, s: 3 }]],
  ];
  for (const [kind, expected] of kinds) {
    for (const emit of ['final', 'updates'] as const) {
      it(`${kind.split(':')[0]}, emit ${emit}: idle ticks close the windows before the input ends`, async () => {
        const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
        const advanceTo = virtualClock(scheduler);
        const h = harness(sumByKey(kind, `idleTimeout: 10s\nemit: ${emit}`), scheduler);
        const input = new Subject<SourceBatch>();
        const seen: Record<string, unknown>[] = [];
        let completed = false;
        input.pipe(h.compiled.operator()).subscribe({
          next: (r) => {
            for (const e of r.tail ?? []) seen.push(e.value as Record<string, unknown>);
          },
          complete: () => {
            completed = true;
          },
        });
        input.next(batch('s', [{ k: 'a', t: 1000, v: 1 }], 1));
        await advanceTo(1000);
        input.next(batch('s', [{ k: 'a', t: 2000, v: 2 }], 2));
        await advanceTo(10 * MIN);
        const order = (x: Record<string, unknown>, y: Record<string, unknown>) =>
          (x.windowStart as number) - (y.windowStart as number) || (x.windowEnd as number) - (y.windowEnd as number);
        if (emit === 'final') expect([...seen].sort(order)).toEqual(expected);
        else {
          // Updates came first (one per changing batch); the last emission of each window is final.
          const last = new Map(seen.map((o) => [`${o.windowStart}/${o.windowEnd}`, o]));
          const finals = [...last.values()].sort(order);
          if (kind.startsWith('session')) expect(finals.at(-1)).toEqual(expected[0]);
          else expect(finals).toEqual(expected);
          expect(seen.length).toBeGreaterThan(expected.length);
        }
        expect(completed).toBe(false);
        input.complete();
        await advanceTo(10 * MIN + 1);
        expect(completed).toBe(true);
      });
    }
  }

  it('a synchronous finite input completes, and its windows are flushed (no ticks left running)', async () => {
    const { testPipeline } = await import('@tributary/core');
    const run = await testPipeline(sumByKey('tumbling: 1m', 'idleTimeout: 10s'), [
      { k: 'a', t: 1, v: 1 },
      { k: 'a', t: 2, v: 2 },
    ]);
    expect(run.output).toEqual([{ key: 'a', windowStart: 0, windowEnd: MIN, n: 2, s: 3 }]);
    expect(run.results.map((r) => r.phase)).toEqual(['batch', 'final']);
  });
});
