// The naive reference for window tests, and random streams to feed it: written here,
// independently of the implementation. Used by the differential tests of core (memory state) and
// of @tributary/state (DynamoDB, Redis).
import type { SourceBatch } from '@tributary/core';
import fc from 'fast-check';

export type Rec = { k: string; t: number; v: number; shard: string; seq: number };
export type Kind =
  | { kind: 'tumbling'; size: number }
  | { kind: 'hopping'; size: number; every: number }
  | { kind: 'sliding'; size: number }
  | { kind: 'session'; gap: number };

export const DISORDER = 40; // max event-time disorder within a shard (ms); the window's outOfOrderness
export const COLLECT = 3;

// ---- the naive reference ----------------------------------------------------------------

function order(a: Rec, b: Rec): number {
  return a.t - b.t || (a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : a.seq - b.seq);
}

function aggregates(rs: Rec[]) {
  const sorted = [...rs].sort(order);
  const vs = rs.map((r) => r.v);
  return {
    n: rs.length,
    s: vs.reduce((a, b) => a + b, 0),
    lo: Math.min(...vs),
    hi: Math.max(...vs),
    mean: vs.reduce((a, b) => a + b, 0) / vs.length,
    f: sorted[0]?.v,
    l: sorted[sorted.length - 1]?.v,
    d: new Set(vs).size,
    c: sorted.slice(0, COLLECT).map((r) => r.v),
  };
}

export function reference(records: Rec[], w: Kind) {
  const unique = new Map<string, Rec>();
  for (const r of records) unique.set(`${r.shard}/${r.seq}`, r);
  const byKey = new Map<string, Rec[]>();
  for (const r of unique.values()) byKey.set(r.k, [...(byKey.get(r.k) ?? []), r]);
  const out: Record<string, unknown>[] = [];
  for (const [k, rs] of byKey) {
    const windows = new Map<string, { start: number; end: number; rs: Rec[] }>();
    const put = (start: number, end: number, r: Rec) => {
      const id = `${start}/${end}`;
      const x = windows.get(id) ?? { start, end, rs: [] };
      x.rs.push(r);
      windows.set(id, x);
    };
    if (w.kind === 'tumbling')
      for (const r of rs) put(Math.floor(r.t / w.size) * w.size, Math.floor(r.t / w.size) * w.size + w.size, r);
    if (w.kind === 'hopping') {
      for (const r of rs) {
        for (let s = Math.floor(r.t / w.every) * w.every; s > r.t - w.size; s -= w.every) put(s, s + w.size, r);
      }
    }
    if (w.kind === 'sliding') {
      for (const t of new Set(rs.map((r) => r.t))) {
        for (const r of rs) if (r.t >= t - w.size && r.t <= t) put(t - w.size, t + 1, r);
      }
    }
    if (w.kind === 'session') {
      const sorted = [...rs].sort((a, b) => a.t - b.t);
      let cur: { start: number; end: number; rs: Rec[] } | undefined;
      const sessions: { start: number; end: number; rs: Rec[] }[] = [];
      for (const r of sorted) {
        if (cur && r.t <= cur.end) {
          cur.end = Math.max(cur.end, r.t + w.gap);
          cur.rs.push(r);
        } else {
          cur = { start: r.t, end: r.t + w.gap, rs: [r] };
          sessions.push(cur);
        }
      }
      for (const s of sessions) for (const r of s.rs) put(s.start, s.end, r);
    }
    for (const x of windows.values()) out.push({ key: k, windowStart: x.start, windowEnd: x.end, ...aggregates(x.rs) });
  }
  return out.sort(byWindow);
}

export function byWindow(a: Record<string, unknown>, b: Record<string, unknown>): number {
  return (
    String(a.key).localeCompare(String(b.key)) ||
    (a.windowStart as number) - (b.windowStart as number) ||
    (a.windowEnd as number) - (b.windowEnd as number)
  );
}

// ---- generators --------------------------------------------------------------------------

export const kindArb: fc.Arbitrary<Kind> = fc.oneof(
  fc.record({ kind: fc.constant('tumbling' as const), size: fc.constantFrom(50, 100, 250) }),
  fc
    .record({ size: fc.constantFrom(100, 200), k: fc.constantFrom(1, 2, 4) })
    .map(({ size, k }) => ({ kind: 'hopping' as const, size, every: size / k })),
  fc.record({ kind: fc.constant('sliding' as const), size: fc.constantFrom(30, 80) }),
  fc.record({ kind: fc.constant('session' as const), gap: fc.constantFrom(15, 40, 90) }),
);

/** One shard's records: event times move forward, each within DISORDER of its slot. */
export const shardArb = (shard: string) =>
  fc
    .array(
      fc.record({
        k: fc.constantFrom('a', 'b', 'c'),
        jitter: fc.integer({ min: 0, max: DISORDER }),
        step: fc.integer({ min: 0, max: 30 }),
        v: fc.integer({ min: -9, max: 9 }),
      }),
      { maxLength: 40 },
    )
    .map((xs) => {
      let base = 1000;
      return xs.map((x, i): Rec => {
        base += x.step;
        return { k: x.k, t: base + x.jitter, v: x.v, shard, seq: i + 1 };
      });
    });

/** Deliveries of one shard: ranges that advance, some starting again from earlier (replays). */
export const planArb = fc.array(
  fc.record({ back: fc.integer({ min: 0, max: 4 }), len: fc.integer({ min: 1, max: 8 }), replay: fc.boolean() }),
  { minLength: 60, maxLength: 60 },
);

export function deliveries(records: Rec[], plan: { back: number; len: number; replay: boolean }[]): Rec[][] {
  const out: Rec[][] = [];
  let next = 0;
  for (const p of plan) {
    if (next >= records.length) break;
    const from = p.replay ? Math.max(0, next - p.back) : next;
    const to = Math.min(records.length, Math.max(next + 1, from + p.len));
    out.push(records.slice(from, to));
    if (p.replay && out.length > 1 && p.back === 0) out.push(records.slice(from, to)); // the same batch twice
    next = to;
  }
  if (next < records.length) out.push(records.slice(next));
  return out;
}

export const toBatch = (rs: Rec[]): SourceBatch => ({
  shardId: rs[0]?.shard ?? 's',
  records: rs.map((r) => ({
    value: { k: r.k, t: r.t, v: r.v },
    partitionKey: r.k,
    sequenceNumber: String(r.seq),
    arrivalTime: 0,
  })),
});

/** A window's identity in output: key, start and end. */
export const windowId = (o: Record<string, unknown>) => `${o.key}/${o.windowStart}/${o.windowEnd}`;

/** The last emission of each window (with `emit: updates`, the value the window ended with). */
export function lastPerWindow(out: readonly Record<string, unknown>[]): Map<string, Record<string, unknown>> {
  const last = new Map<string, Record<string, unknown>>();
  for (const o of out) last.set(windowId(o), o);
  return last;
}

/**
 * Delivers every stream's deliveries, each stream in its own order, the streams interleaved as
 * `turns` says: turn i goes to stream `turns[i % turns.length] % streams.length`, or to the next
 * stream with deliveries left.
 */
export async function deliverInterleaved(
  streams: readonly Rec[][][],
  turns: readonly number[],
  deliver: (batch: SourceBatch, stream: number) => Promise<unknown>,
): Promise<void> {
  const cursors = streams.map(() => 0);
  for (let i = 0; cursors.some((c, s) => c < (streams[s] as Rec[][]).length); i++) {
    let s = (turns[i % turns.length] as number) % streams.length;
    while ((cursors[s] as number) >= (streams[s] as Rec[][]).length) s = (s + 1) % streams.length;
    await deliver(toBatch((streams[s] as Rec[][])[cursors[s] as number] as Rec[]), s);
    cursors[s] = (cursors[s] as number) + 1;
  }
}

/** Delivers every stream's first delivery, then every stream's second, and so on. */
export async function deliverInTurn(
  streams: readonly Rec[][][],
  deliver: (batch: SourceBatch, stream: number) => Promise<unknown>,
): Promise<void> {
  const longest = Math.max(...streams.map((s) => s.length));
  for (let i = 0; i < longest; i++) {
    for (const [s, stream] of streams.entries()) if (stream[i]) await deliver(toBatch(stream[i] as Rec[]), s);
  }
}

export function windowYaml(w: Kind, emit: string, extra = ''): string {
  const kind =
    w.kind === 'tumbling'
      ? `tumbling: ${w.size}`
      : w.kind === 'hopping'
        ? `hopping: { size: ${w.size}, every: ${w.every} }`
        : w.kind === 'sliding'
          ? `sliding: ${w.size}`
          : `session: { gap: ${w.gap} }`;
  return `  - window:
      key: event.k
      ${kind}
      outOfOrderness: ${DISORDER}
      allowedLateness: 5
      emit: ${emit}
      aggregate:
        n: count()
        s: sum(event.v)
        lo: min(event.v)
        hi: max(event.v)
        mean: avg(event.v)
        f: first(event.v)
        l: last(event.v)
        d: count_distinct(event.v)
        c: 'collect(event.v, ${COLLECT})'${extra}`;
}
