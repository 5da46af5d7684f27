/**
 * The worker's metrics in Prometheus terms (prom-client), on a registry of the worker's own — not
 * prom-client's global one — so that two workers in one process (tests, or several pipelines)
 * never share or clash over series. `/metrics` (http.ts) serves `metrics.text()`.
 *
 * | series                                      | type    | labels          |
 * | ------------------------------------------- | ------- | --------------- |
 * | `tributary_records_in_total`                | counter | shard           |
 * | `tributary_records_out_total`               | counter | shard           |
 * | `tributary_dead_lettered_total`             | counter | shard           |
 * | `tributary_late_total`                      | counter | shard           |
 * | `tributary_iterator_age_ms`                 | gauge   | shard           |
 * | `tributary_leases_held`                     | gauge   |                 |
 * | `tributary_lease_events_total`              | counter | kind            |
 * | `tributary_checkpoint_lag_records`          | gauge   | shard           |
 * | `tributary_calls_total`                     | counter | target, outcome |
 *
 * plus prom-client's default process metrics (`process_*`, `nodejs_*`) on the same registry.
 */
import { ConfigError } from '@tributary/core/spi';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { WorkerMetrics } from './leaseTypes.js';

/** Options of {@link PromWorkerMetrics}. */
export interface PromWorkerMetricsOptions {
  /** Labels put on every series (e.g. `{ app, worker }`); none by default. */
  defaultLabels?: Record<string, string>;
  /** Whether prom-client's default process metrics are collected on the registry (default true). */
  processMetrics?: boolean;
}

/** What {@link PromWorkerMetrics.snapshot} returns (the status line's figures). */
export interface MetricsSnapshot {
  recordsIn: number;
  leasesHeld: number;
  /** Absent until a shard has reported one. */
  maxIteratorAgeMs?: number;
}

/** The worker's metrics on a prom-client registry of its own. */
export class PromWorkerMetrics implements WorkerMetrics {
  /** The registry every series of this worker is on. */
  readonly registry: Registry;
  readonly #recordsIn: Counter<'shard'>;
  readonly #recordsOut: Counter<'shard'>;
  readonly #deadLettered: Counter<'shard'>;
  readonly #late: Counter<'shard'>;
  readonly #iteratorAge: Gauge<'shard'>;
  readonly #leasesHeld: Gauge;
  readonly #leaseEvents: Counter<'kind'>;
  readonly #checkpointLag: Gauge<'shard'>;
  readonly #calls: Counter<'target' | 'outcome'>;
  /** What the status line shows, kept beside the series (reading them back from prom-client is async). */
  #totalIn = 0;
  #held = 0;
  readonly #ages = new Map<string, number>();

  constructor(options: PromWorkerMetricsOptions = {}) {
    this.registry = new Registry();
    if (options.defaultLabels !== undefined) this.registry.setDefaultLabels(options.defaultLabels);
    const registers = [this.registry];
    const perShard = (name: string, help: string) =>
      new Counter({ name, help, labelNames: ['shard'] as const, registers });
    this.#recordsIn = perShard('tributary_records_in_total', 'Records read from the shard and handed to the pipeline.');
    this.#recordsOut = perShard(
      'tributary_records_out_total',
      'Records the pipeline wrote to its sinks, by input shard.',
    );
    this.#deadLettered = perShard('tributary_dead_lettered_total', 'Records routed to the dead-letter output.');
    this.#late = perShard('tributary_late_total', 'Records that arrived after their window had closed.');
    this.#iteratorAge = new Gauge({
      name: 'tributary_iterator_age_ms',
      help: "Milliseconds the shard's reader is behind the stream's tip (GetRecords MillisBehindLatest).",
      labelNames: ['shard'] as const,
      registers,
    });
    this.#leasesHeld = new Gauge({ name: 'tributary_leases_held', help: 'Shard leases this worker holds.', registers });
    this.#leaseEvents = new Counter({
      name: 'tributary_lease_events_total',
      help: 'Lease events: taken (free or expired), stolen (for balance), lost, released, renewFailed.',
      labelNames: ['kind'] as const,
      registers,
    });
    this.#checkpointLag = new Gauge({
      name: 'tributary_checkpoint_lag_records',
      help: 'Records of the shard processed but not yet checkpointed.',
      labelNames: ['shard'] as const,
      registers,
    });
    this.#calls = new Counter({
      name: 'tributary_calls_total',
      help: 'Calls to the window state, the sinks, Kinesis and the lease table, by outcome (ok, retry, error).',
      labelNames: ['target', 'outcome'] as const,
      registers,
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  recordsIn(shardId: string, n: number): void {
    this.#recordsIn.inc({ shard: shardId }, checkCount('recordsIn', n));
    this.#totalIn += n;
  }
  recordsOut(shardId: string, n: number): void {
    this.#recordsOut.inc({ shard: shardId }, checkCount('recordsOut', n));
  }
  deadLettered(shardId: string, n: number): void {
    this.#deadLettered.inc({ shard: shardId }, checkCount('deadLettered', n));
  }
  late(shardId: string, n: number): void {
    this.#late.inc({ shard: shardId }, checkCount('late', n));
  }
  iteratorAge(shardId: string, ms: number): void {
    this.#iteratorAge.set({ shard: shardId }, checkCount('iteratorAge', ms));
    this.#ages.set(shardId, ms);
  }
  leasesHeld(n: number): void {
    this.#leasesHeld.set(checkCount('leasesHeld', n));
    this.#held = n;
  }
  leaseEvent(kind: 'taken' | 'stolen' | 'lost' | 'released' | 'renewFailed'): void {
    this.#leaseEvents.inc({ kind });
  }
  checkpointLag(shardId: string, records: number): void {
    this.#checkpointLag.set({ shard: shardId }, checkCount('checkpointLag', records));
  }
  call(target: 'state' | 'sink' | 'kinesis' | 'leases', outcome: 'ok' | 'retry' | 'error'): void {
    this.#calls.inc({ target, outcome });
  }

  /**
   * A shard no longer held: its gauges (iterator age, checkpoint lag) are removed, so a lost
   * shard does not keep reporting the last age it had here. Its counters stay (they only grow).
   */
  forgetShard(shardId: string): void {
    this.#iteratorAge.remove({ shard: shardId });
    this.#checkpointLag.remove({ shard: shardId });
    this.#ages.delete(shardId);
  }

  /** Now: records in so far (every shard), leases held, and the largest iterator age of a shard held. */
  snapshot(): MetricsSnapshot {
    let maxAge: number | undefined;
    for (const age of this.#ages.values()) maxAge = maxAge === undefined ? age : Math.max(maxAge, age);
    return {
      recordsIn: this.#totalIn,
      leasesHeld: this.#held,
      ...(maxAge === undefined ? {} : { maxIteratorAgeMs: maxAge }),
    };
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A count or gauge value must be a finite number ≥ 0 (a negative count is a bug in the caller). */
function checkCount(what: string, n: number): number {
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`Expected \`${what}\` to be a finite number ≥ 0, got ${n}`);
  return n;
}

/** Metrics that go nowhere (a worker started without a metrics port, tests of other parts). */
export const noMetrics: WorkerMetrics = {
  recordsIn() {},
  recordsOut() {},
  deadLettered() {},
  late() {},
  iteratorAge() {},
  leasesHeld() {},
  leaseEvent() {},
  checkpointLag() {},
  call() {},
};
