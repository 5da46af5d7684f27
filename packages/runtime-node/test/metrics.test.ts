import { describe, expect, it } from 'vitest';
import { noMetrics, PromWorkerMetrics } from '../src/metrics.js';

/**
 * One sample line of the Prometheus text format 0.0.4: name, optional {labels}, value. Prometheus
 * reads the value with Go's ParseFloat, which takes NaN and Inf in any case (prom-client writes
 * an event-loop lag not yet measured as `Nan`).
 */
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|[nN][aA][nN]|[+-][iI][nN][fF]))(?: -?\d+)?$/;
const HELP = /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;
const TYPE = /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/;

interface Parsed {
  types: Map<string, string>;
  /** `name{a="x",b="y"}` (labels sorted) → value. */
  samples: Map<string, number>;
}

/** Parses exposition text strictly: every line is HELP, TYPE, a sample, or empty; throws at the first other line. */
function parseExposition(text: string): Parsed {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '') return;
    if (HELP.test(line)) return;
    const t = TYPE.exec(line);
    if (t) {
      types.set(line.split(' ')[2] as string, t[1] as string);
      return;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not Prometheus text: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`)
      .sort();
    const key = `${m[1]}{${labels.join(',')}}`;
    if (samples.has(key)) throw new Error(`line ${i + 1}: series ${key} twice`);
    samples.set(key, Number(m[3]));
  });
  return { types, samples };
}

const key = (name: string, labels: Record<string, string> = {}) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',')}}`;

/** A small deterministic generator (mulberry32), so a failure can be reproduced from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('PromWorkerMetrics', () => {
  it('exposes nothing of tributary before any call, but declares every series and its type', async () => {
    const m = new PromWorkerMetrics({ processMetrics: false });
    const { types, samples } = parseExposition(await m.text());
    expect(Object.fromEntries([...types].filter(([n]) => n.startsWith('tributary_')))).toEqual({
      tributary_records_in_total: 'counter',
      tributary_records_out_total: 'counter',
      tributary_dead_lettered_total: 'counter',
      tributary_late_total: 'counter',
      tributary_iterator_age_ms: 'gauge',
      tributary_leases_held: 'gauge',
      tributary_lease_events_total: 'counter',
      tributary_checkpoint_lag_records: 'gauge',
      tributary_calls_total: 'counter',
    });
    // Only the unlabelled gauge has a sample (0) before any call.
    expect([...samples]).toEqual([[key('tributary_leases_held'), 0]]);
  });

  it('many random calls over 4 shards: every series equals the sum (counters) or last value (gauges) of its calls', async () => {
    const m = new PromWorkerMetrics({ processMetrics: false });
    const next = random(15);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] as T;
    const shards = ['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002', 'shardId-000000000003'];
    const oracle = new Map<string, number>();
    const add = (k: string, n: number) => oracle.set(k, (oracle.get(k) ?? 0) + n);
    const counters = [
      ['recordsIn', 'tributary_records_in_total'],
      ['recordsOut', 'tributary_records_out_total'],
      ['deadLettered', 'tributary_dead_lettered_total'],
      ['late', 'tributary_late_total'],
    ] as const;
    const kinds = ['taken', 'stolen', 'lost', 'released', 'renewFailed'] as const;
    const targets = ['state', 'sink', 'kinesis', 'leases'] as const;
    const outcomes = ['ok', 'retry', 'error'] as const;
    oracle.set(key('tributary_leases_held'), 0);
    for (let i = 0; i < 5000; i++) {
      const shard = pick(shards);
      const n = Math.floor(next() * 500);
      switch (Math.floor(next() * 6)) {
        case 0: {
          const [method, name] = pick(counters);
          m[method](shard, n);
          add(key(name, { shard }), n);
          break;
        }
        case 1:
          m.iteratorAge(shard, n * 7);
          oracle.set(key('tributary_iterator_age_ms', { shard }), n * 7);
          break;
        case 2:
          m.leasesHeld(n % 5);
          oracle.set(key('tributary_leases_held'), n % 5);
          break;
        case 3: {
          const kind = pick(kinds);
          m.leaseEvent(kind);
          add(key('tributary_lease_events_total', { kind }), 1);
          break;
        }
        case 4:
          m.checkpointLag(shard, n);
          oracle.set(key('tributary_checkpoint_lag_records', { shard }), n);
          break;
        default: {
          const target = pick(targets);
          const outcome = pick(outcomes);
          m.call(target, outcome);
          add(key('tributary_calls_total', { target, outcome }), 1);
        }
      }
    }
    const { samples } = parseExposition(await m.text());
    expect(Object.fromEntries(samples)).toEqual(Object.fromEntries(oracle));
    // The snapshot (the status line's figures) agrees with the same calls.
    const inTotal = [...oracle]
      .filter(([k]) => k.startsWith('tributary_records_in_total'))
      .reduce((a, [, v]) => a + v, 0);
    const ages = [...oracle].filter(([k]) => k.startsWith('tributary_iterator_age_ms')).map(([, v]) => v);
    expect(m.snapshot()).toEqual({
      recordsIn: inTotal,
      leasesHeld: oracle.get(key('tributary_leases_held')),
      maxIteratorAgeMs: Math.max(...ages),
    });
  });

  it('one call: one sample; a forgotten shard loses its gauges but keeps its counters', async () => {
    const m = new PromWorkerMetrics({ processMetrics: false });
    m.recordsIn('shardId-000000000001', 3);
    m.iteratorAge('shardId-000000000001', 1500);
    m.checkpointLag('shardId-000000000001', 3);
    m.iteratorAge('shardId-000000000002', 20);
    expect(m.snapshot()).toEqual({ recordsIn: 3, leasesHeld: 0, maxIteratorAgeMs: 1500 });
    m.forgetShard('shardId-000000000001');
    const { samples } = parseExposition(await m.text());
    expect(Object.fromEntries(samples)).toEqual({
      [key('tributary_records_in_total', { shard: 'shardId-000000000001' })]: 3,
      [key('tributary_iterator_age_ms', { shard: 'shardId-000000000002' })]: 20,
      [key('tributary_leases_held')]: 0,
    });
    expect(m.snapshot()).toEqual({ recordsIn: 3, leasesHeld: 0, maxIteratorAgeMs: 20 });
  });

  it('refuses a negative or non-finite count, naming it', () => {
    const m = new PromWorkerMetrics({ processMetrics: false });
    expect(() => m.recordsIn('s', -1)).toThrow('Expected `recordsIn` to be a finite number ≥ 0, got -1');
    expect(() => m.iteratorAge('s', Number.NaN)).toThrow('Expected `iteratorAge` to be a finite number ≥ 0, got NaN');
    expect(() => m.leasesHeld(Number.POSITIVE_INFINITY)).toThrow('`leasesHeld`');
  });

  it('two workers in one process keep separate registries (no clash, no shared counts), with default labels and process metrics', async () => {
    const a = new PromWorkerMetrics({ defaultLabels: { worker: 'a' } });
    const b = new PromWorkerMetrics({ defaultLabels: { worker: 'b' } });
    a.recordsIn('shardId-000000000000', 5);
    b.recordsIn('shardId-000000000000', 7);
    const pa = parseExposition(await a.text());
    const pb = parseExposition(await b.text());
    expect(pa.samples.get(key('tributary_records_in_total', { shard: 'shardId-000000000000', worker: 'a' }))).toBe(5);
    expect(pb.samples.get(key('tributary_records_in_total', { shard: 'shardId-000000000000', worker: 'b' }))).toBe(7);
    expect([...pa.samples.keys()].some((k) => k.includes('worker="b"'))).toBe(false);
    // prom-client's default process metrics are on the worker's registry.
    expect(pa.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(pa.types.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    expect(pa.samples.get(key('process_resident_memory_bytes', { worker: 'a' }))).toBeGreaterThan(0);
    expect(a.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('noMetrics takes every call and does nothing', () => {
    for (const [name, fn] of Object.entries(noMetrics)) {
      expect(typeof fn, name).toBe('function');
      expect((fn as (...a: unknown[]) => unknown)('shardId-000000000000', 1)).toBeUndefined();
    }
    expect(Object.keys(noMetrics).sort()).toEqual(
      Object.getOwnPropertyNames(PromWorkerMetrics.prototype)
        .filter((n) => !['constructor', 'forgetShard', 'text', 'contentType', 'snapshot'].includes(n))
        .sort(),
    );
  });
});
