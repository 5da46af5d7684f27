// Memory window state across a restart: the checkpoint is held back to the oldest record still in
// an open window of the shard, and the records from there up to the last processed one are
// replayed into a fresh compiled pipeline, each judged against the watermark it was judged against
// the first time. Checked on 4 shards of per-shard tumbling, session, hopping and sliding windows
// (keyIsPartitionKey, one route each), with out-of-order and late records and records that are
// dead-lettered, cut at random points (twice, the second cut possibly in the middle of the
// replay): the union of what the runs emit,
// report late and dead-letter equals one uninterrupted run's and an oracle recomputed from the
// input, every record in exactly one place and every window emitted once.
import {
  type CompiledPipeline,
  compile,
  count,
  type DeadLetterRecord,
  fileSource,
  MemorySink,
  type Pipeline,
  pipeline,
  type SourceRecord,
  sum,
} from '@tributary/core';
import { VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';

type Ev = { id: string; k: string; t: number; v: number | string; w: 'T' | 'S' | 'H' | 'L' };
type Tagged = Out & { kind: string };
type Out = { key: string; windowStart: number; windowEnd: number; n: number; s: number };
type Rec = { shard: string; seq: string; ev: Ev | undefined };

const SHARDS = 4;
const SIZE = 100;
const GAP = 40;
const HOP = { size: 100, every: 50 };
const SLIDE = 30;
const OOO = 20;
const LATENESS = 10;

/** A small seeded generator (mulberry32): the same seed gives the same input, cuts and batches. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)) };
}

/** Shard s's records: 3 keys of its own, event times rising with jitter (some far behind: late), a few bad. */
function input(seed: number): Map<string, Rec[]> {
  const r = rng(seed);
  const out = new Map<string, Rec[]>();
  for (let s = 0; s < SHARDS; s++) {
    const shard = `shard-${s}`;
    const recs: Rec[] = [];
    let base = 1000;
    for (let i = 0; i < 160; i++) {
      base += r.int(0, 12);
      const seq = String(100_000 + i);
      const roll = r.next();
      if (roll < 0.02) {
        recs.push({ shard, seq, ev: undefined }); // not JSON: dead-lettered when decoded
        continue;
      }
      const jitter = r.next() < 0.1 ? -r.int(20, 150) : r.int(-15, 15);
      const ev: Ev = {
        id: `${shard}/${seq}`,
        k: `k${s}${r.int(0, 2)}`,
        t: base + jitter,
        v: roll < 0.05 ? 'x' : r.int(1, 9), // a text value: its sum fails, the record is dead-lettered
        w: (['T', 'S', 'H', 'L'] as const)[r.int(0, 3)] as Ev['w'],
      };
      recs.push({ shard, seq, ev });
    }
    out.set(shard, recs);
  }
  return out;
}

const sourceRecord = (x: Rec): SourceRecord =>
  x.ev === undefined
    ? { data: '{not json', partitionKey: 'bad', sequenceNumber: x.seq, arrivalTime: 0 }
    : { value: x.ev, partitionKey: x.ev.k, sequenceNumber: x.seq, arrivalTime: 0 };

/** Cuts records into batches of 1..12. */
function cut(records: Rec[], r: ReturnType<typeof rng>): Rec[][] {
  const out: Rec[][] = [];
  for (let i = 0; i < records.length; ) {
    const n = r.int(1, 12);
    out.push(records.slice(i, i + n));
    i += n;
  }
  return out;
}

interface Run {
  compiled: CompiledPipeline;
  tumbling: MemorySink<Out>;
  sessions: MemorySink<Out>;
  hopping: MemorySink<Out>;
  sliding: MemorySink<Out>;
  late: MemorySink<Ev>;
  dead: MemorySink<DeadLetterRecord>;
}

function run(holdBackCheckpoints = true): Run {
  const tumbling = new MemorySink<Out>();
  const sessions = new MemorySink<Out>();
  const hopping = new MemorySink<Out>();
  const sliding = new MemorySink<Out>();
  const late = new MemorySink<Ev>();
  const dead = new MemorySink<DeadLetterRecord>();
  const common = {
    key: (e: Ev) => e.k,
    aggregate: { n: count(), s: sum((e: Ev) => e.v as number) },
    keyIsPartitionKey: true,
    outOfOrderness: OOO,
    allowedLateness: LATENESS,
    idleTimeout: '1h',
  };
  const p = pipeline('held-back')
    .source(fileSource<Ev>({ path: 'unused.jsonl' }))
    .eventTime((e) => e.t)
    .branch([
      {
        when: (e) => e.w === 'T',
        steps: (b) => b.window({ ...common, tumbling: SIZE, late }).sink(tumbling),
      },
      { when: (e) => e.w === 'S', steps: (b) => b.window({ ...common, session: { gap: GAP } }).sink(sessions) },
      { when: (e) => e.w === 'H', steps: (b) => b.window({ ...common, hopping: HOP }).sink(hopping) },
      { when: (e) => e.w === 'L', steps: (b) => b.window({ ...common, sliding: SLIDE }).sink(sliding) },
    ])
    .build() as Pipeline;
  const compiled = compile(p, {
    deadLetter: dead,
    scheduler: new VirtualTimeScheduler(),
    holdBackCheckpoints,
  });
  return { compiled, tumbling, sessions, hopping, sliding, late, dead };
}

const batchOf = (shardId: string, recs: Rec[]) => ({ shardId, records: recs.map(sourceRecord) });

/**
 * The oracle, written from the semantics (steps/window.ts), independent of the operators: per
 * shard and batch in order, a record is late when every window of it had closed by the watermark
 * as of the batch's start; sessions merge gap windows that touch, a closed gap window joining
 * only a session stored before the batch; after each batch the watermark is the shard's highest
 * event time − outOfOrderness and closes windows at end + allowedLateness; at the end all emit.
 * Hopping: a record is late when all of its windows had closed. Sliding: a record is late when
 * its own point had closed; each point's window holds every record not late in [t − size, t].
 */
function oracle(batches: Map<string, Rec[][]>) {
  const windows: Tagged[] = [];
  const placed: string[] = [];
  const late: string[] = [];
  const dead: string[] = [];
  for (const [shard, list] of batches) {
    let maxT = Number.NEGATIVE_INFINITY;
    let wm = Number.NEGATIVE_INFINITY;
    const buckets = new Map<string, Tagged>();
    /** Sliding: the points (records not late) per key; each point's window is computed at the end. */
    const points = new Map<string, Ev[]>();
    type Session = { key: string; start: number; end: number; n: number; s: number };
    const stored = new Map<string, Session[]>();
    const fire = (all: boolean) => {
      for (const [id, b] of buckets)
        if (all || b.windowEnd + LATENESS <= wm) {
          windows.push(b);
          buckets.delete(id);
        }
      for (const [k, ss] of stored) {
        const keep: Session[] = [];
        for (const x of ss) {
          if (all || x.end + LATENESS <= wm)
            windows.push({ kind: 'S', key: k, windowStart: x.start, windowEnd: x.end, n: x.n, s: x.s });
          else keep.push(x);
        }
        stored.set(k, keep);
      }
    };
    for (const batch of list) {
      const sessionRecs = new Map<string, Ev[]>();
      for (const x of batch) {
        if (x.ev === undefined) {
          dead.push(`${shard}/${x.seq}`);
          continue;
        }
        const e = x.ev;
        maxT = Math.max(maxT, e.t);
        if (typeof e.v !== 'number') {
          dead.push(e.id);
          continue;
        }
        if (e.w === 'T' || e.w === 'H') {
          const [size, every] = e.w === 'T' ? [SIZE, SIZE] : [HOP.size, HOP.every];
          let any = false;
          for (let start = Math.floor(e.t / every) * every; start > e.t - size; start -= every) {
            if (start + size + LATENESS <= wm) continue;
            any = true;
            const id = `${e.w}/${e.k}/${start}`;
            const b = buckets.get(id) ?? {
              kind: e.w,
              key: e.k,
              windowStart: start,
              windowEnd: start + size,
              n: 0,
              s: 0,
            };
            b.n++;
            b.s += e.v;
            buckets.set(id, b);
          }
          (any ? placed : late).push(e.id);
        } else if (e.w === 'L') {
          if (e.t + 1 + LATENESS <= wm) late.push(e.id);
          else {
            placed.push(e.id);
            points.set(e.k, [...(points.get(e.k) ?? []), e]);
          }
        } else sessionRecs.set(e.k, [...(sessionRecs.get(e.k) ?? []), e]);
      }
      for (const [k, evs] of sessionRecs) {
        // One gap window per distinct event time of the key in the batch.
        const deltas = new Map<number, { start: number; end: number; n: number; s: number; ids: string[] }>();
        for (const e of evs) {
          const d = deltas.get(e.t) ?? { start: e.t, end: e.t + GAP, n: 0, s: 0, ids: [] };
          d.n++;
          d.s += e.v as number;
          d.ids.push(e.id);
          deltas.set(e.t, d);
        }
        const ds = [...deltas.values()];
        const touches = (a: { start: number; end: number }, b: { start: number; end: number }) =>
          a.start <= b.end && a.end >= b.start;
        const old = (stored.get(k) ?? []).filter((w) => ds.some((d) => touches(w, d)));
        const live = ds.filter((d) => {
          if (d.end + LATENESS > wm || old.some((w) => touches(w, d))) {
            placed.push(...d.ids);
            return true;
          }
          late.push(...d.ids);
          return false;
        });
        if (live.length === 0) continue;
        const parts = [...old.map((w) => ({ ...w })), ...live.map((d) => ({ key: k, ...d }))].sort(
          (a, b) => a.start - b.start,
        );
        const merged: Session[] = [];
        for (const p of parts) {
          const last = merged[merged.length - 1];
          if (last && p.start <= last.end) {
            last.end = Math.max(last.end, p.end);
            last.n += p.n;
            last.s += p.s;
          } else merged.push({ key: k, start: p.start, end: p.end, n: p.n, s: p.s });
        }
        stored.set(k, [...(stored.get(k) ?? []).filter((w) => !old.includes(w)), ...merged]);
      }
      wm = Math.max(wm, maxT - OOO);
      fire(false);
    }
    fire(true);
    // Sliding: one window per point t, [t − size, t], of every point of the key in it (a record in
    // it that came after the window closed was late).
    for (const [k, evs] of points) {
      for (const t of new Set(evs.map((e) => e.t))) {
        const inside = evs.filter((e) => e.t >= t - SLIDE && e.t <= t);
        windows.push({
          kind: 'L',
          key: k,
          windowStart: t - SLIDE,
          windowEnd: t + 1,
          n: inside.length,
          s: inside.reduce((a, e) => a + (e.v as number), 0),
        });
      }
    }
  }
  return { windows: windows.sort(byWindow), late: late.sort(), dead: dead.sort(), placed: placed.sort() };
}

function byWindow(a: Tagged, b: Tagged): number {
  return (
    a.kind.localeCompare(b.kind) ||
    a.key.localeCompare(b.key) ||
    a.windowStart - b.windowStart ||
    a.windowEnd - b.windowEnd
  );
}

/** What runs produced together: windows (each at most once), late record ids, dead-lettered ones. */
function union(runs: Run[]) {
  const tag = (kind: string, sink: MemorySink<Out>) => sink.values.map((w) => ({ kind, ...w }));
  const windows = runs
    .flatMap((r) => [...tag('T', r.tumbling), ...tag('S', r.sessions), ...tag('H', r.hopping), ...tag('L', r.sliding)])
    .sort(byWindow);
  const ids = windows.map((w) => `${w.kind}/${w.key}/${w.windowStart}/${w.windowEnd}`);
  expect(new Set(ids).size).toBe(ids.length); // no window emitted twice
  const late = runs
    .flatMap((r) => [
      ...r.late.values.map((e) => e.id),
      ...r.dead.values.filter((d) => d.reason === 'late').map((d) => `${d.shardId}/${d.sequenceNumber}`),
    ])
    .sort();
  const dead = runs
    .flatMap((r) => r.dead.values.filter((d) => d.reason !== 'late').map((d) => `${d.shardId}/${d.sequenceNumber}`))
    .sort();
  return { windows, late, dead };
}

describe('memory window state resumed from a held-back checkpoint', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) {
    it(`seed ${seed}: two restarts at random points give what one uninterrupted run and the oracle give`, async () => {
      const r = rng(seed * 7919);
      const records = input(seed);
      /** Per shard, the batches as the pipeline processed them (a replay repeats the original ones). */
      const effective = new Map<string, Rec[][]>([...records.keys()].map((s) => [s, []]));
      const runs: Run[] = [];
      /** Per shard: where the next run reads after (null: from the start) and what it resumes with. */
      let from = new Map<string, { after: string | null; resume?: { processed: string; state: string } }>(
        [...records.keys()].map((s) => [s, { after: null }]),
      );
      const processedOf = new Map<string, string>();
      for (let part = 0; part < 3; part++) {
        const current = run();
        runs.push(current);
        const next = new Map<string, { after: string | null; resume?: { processed: string; state: string } }>();
        for (const [shard, recs] of records) {
          const start = from.get(shard) as { after: string | null; resume?: { processed: string; state: string } };
          if (start.resume) current.compiled.resumeShard(shard, start.resume);
          const rest = start.after === null ? recs : recs.filter((x) => x.seq > (start.after as string));
          // The first run is cut in its original batches; later ones read in pages of another size.
          const pages = cut(rest, r);
          const stopAt = part === 2 ? pages.length : r.int(0, pages.length);
          for (const page of pages.slice(0, stopAt)) {
            await current.compiled.process(batchOf(shard, page));
            const done = processedOf.get(shard);
            const fresh = done === undefined ? page : page.filter((x) => x.seq > done);
            if (fresh.length > 0) {
              (effective.get(shard) as Rec[][]).push(fresh);
              processedOf.set(shard, (fresh[fresh.length - 1] as Rec).seq);
            }
          }
          const cp = current.compiled.shardCheckpointState(shard);
          if (cp === undefined) next.set(shard, start);
          else
            next.set(shard, {
              after: cp.retainedAfter ?? start.after,
              resume: { processed: cp.processed, state: cp.state },
            });
          if (cp) expect(cp.processed).toBe(processedOf.get(shard));
        }
        // The process ends: the first two are thrown away (nothing flushed), the last reaches the end.
        if (part === 2) await current.compiled.flush();
        from = next;
      }
      const expected = oracle(effective);
      // Windows really were open at the cuts and records were replayed (the test tests something).
      expect(expected.windows.length).toBeGreaterThan(50);
      expect(expected.late.length).toBeGreaterThan(0);
      const { placed, ...outcome } = expected;
      expect(union(runs)).toEqual(outcome);

      // One uninterrupted run over the same batches.
      const whole = run();
      for (const [shard, list] of effective) for (const b of list) await whole.compiled.process(batchOf(shard, b));
      await whole.compiled.flush();
      expect(union([whole])).toEqual(outcome);
      // Every record in exactly one place.
      const all = [...records.values()].flat();
      const ids = [...placed, ...expected.late, ...expected.dead].sort();
      expect(ids).toEqual(all.map((x) => x.ev?.id ?? `${x.shard}/${x.seq}`).sort());
    });
  }

  it('holds the checkpoint back while windows are open, and nothing back without memory window steps or unless asked', async () => {
    const a = run();
    const recs = (input(9).get('shard-0') as Rec[]).slice(0, 5);
    expect(a.compiled.holdsCheckpoints).toBe(true);
    expect(a.compiled.shardCheckpointState('shard-0')).toBeUndefined();
    await a.compiled.process(batchOf('shard-0', recs));
    const cp = a.compiled.shardCheckpointState('shard-0');
    expect(cp?.processed).toBe('100004');
    // Every record of the page is in an open window: the checkpoint stays before the first page.
    expect(cp?.retainedAfter).toBeNull();
    expect(a.compiled.retainedPosition('shard-0')).toBeDefined();
    await a.compiled.flush();
    await a.compiled.process(batchOf('shard-0', []));
    const stateless = compile(
      pipeline('stateless')
        .source(fileSource<Ev>({ path: 'unused.jsonl' }))
        .sink(new MemorySink())
        .build() as Pipeline,
    );
    expect(stateless.holdsCheckpoints).toBe(false);
    await stateless.process(batchOf('shard-0', recs));
    expect(stateless.shardCheckpointState('shard-0')).toBeUndefined();
    // A runtime that does not checkpoint (the file runner, Lambda) keeps nothing for it.
    const unheld = run(false);
    expect(unheld.compiled.holdsCheckpoints).toBe(false);
    await unheld.compiled.process(batchOf('shard-0', recs));
    expect(unheld.compiled.shardCheckpointState('shard-0')).toBeUndefined();
  });
});
