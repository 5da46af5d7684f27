/**
 * The typed TypeScript builder. It only adds nodes to a `PipelineSpec` (like Kafka Streams'
 * `StreamsBuilder`); `compile()` turns the result into operators. Functions and objects passed
 * to it are bound by generated names (`#filter-0`), so the spec stays plain data. The record
 * type is inferred through every step: a wrong field is a compile error.
 */
import type { Pipeline } from './compile/compile.js';
import type { Lookup, Sink } from './compile/types.js';
import type { Duration } from './duration.js';
import { ConfigError } from './errors.js';
import type { ExpressionSource } from './expression.js';
import type { StaticLookupSpec } from './lookups/static.js';
import type { FieldType } from './schema.js';
import type { FileSinkSpec } from './sinks/file.js';
import type { FileSourceSpec } from './sources/file.js';
import type { LookupSpec, PipelineSpec, SinkSpec, SourceSpec, StepSpec, StoreSpec } from './spec.js';
import type { MapTemplate } from './steps/map.js';
import type { AggregateSpec, WindowSpec } from './steps/window.js';
import type { Agg, AggResult } from './windows/aggregateFunctions.js';
import { isStateStore, type StateStore } from './windows/shared.js';

/** A source spec carrying the type of its records (a phantom type, for inference only). */
export interface TypedSource<T> {
  readonly spec: SourceSpec;
  readonly __record?: T;
}
/** A lookup spec carrying the type of its values. */
export interface TypedLookup<V> {
  readonly spec: LookupSpec;
  readonly __value?: V;
}

export function fileSource<T = unknown>(options: FileSourceSpec): TypedSource<T> {
  return { spec: { file: options } };
}
export function fileSink(options: FileSinkSpec): SinkSpec {
  return { file: options };
}
export function stdoutSink(options: { pretty?: boolean } = {}): SinkSpec {
  return { stdout: options };
}
export function staticLookup<V = unknown>(options: StaticLookupSpec): TypedLookup<V> {
  return { spec: { static: options } };
}

type Fn<A extends unknown[], R> = (...args: A) => R;
type Key = string | number | boolean;

interface StepOptions {
  /** Node name (default `kind-N`). */
  name?: string;
}

export interface EnrichOptions<T, V, As extends string> extends StepOptions {
  lookup: TypedLookup<V> | Lookup;
  key: ((event: T) => Key | null | undefined) | string;
  as: As;
  onMissing?: 'keep' | 'drop' | 'dead-letter';
  cache?: { maxEntries?: number; ttl?: Duration };
}

/** Options of `.window()`; exactly one of tumbling, hopping, sliding, session. */
export type WindowOptions<T, K, A extends Record<string, Agg<T, unknown>>> = StepOptions & {
  key?: ((event: T) => K) | string;
  allowedLateness?: Duration;
  outOfOrderness?: Duration;
  idleTimeout?: Duration;
  aggregate: A;
  emit?: 'final' | 'updates';
  /** The stream's partition key is the window key: windows close on their own shard's watermark. */
  keyIsPartitionKey?: boolean;
  late?: SinkSpec | Sink;
  /** Where window state lives: `'memory'` (default), a store such as `dynamoDbState({...})`, or its spec. */
  state?: 'memory' | StoreSpec | StateStore;
} & (
    | { tumbling: Duration }
    | { hopping: { size: Duration; every: Duration } }
    | { sliding: Duration }
    | { session: { gap: Duration } }
  );

/** The record a window emits. */
export type WindowResult<K, A> = { key: K; windowStart: number; windowEnd: number } & {
  [N in keyof A]: AggResult<A[N]>;
};

/** Record type after `enrich` with `as`: the looked-up value, or null when missing. */
export type Enriched<T, V, As extends string> = T & { [K in As]: V | null };

class Bindings {
  readonly map = new Map<string, unknown>();
  private n = new Map<string, number>();
  /** Binds a value under a generated name: `#kind_N` for functions, `kind-N` for objects. */
  bind(kind: string, value: unknown): string {
    const i = this.n.get(kind) ?? 0;
    this.n.set(kind, i + 1);
    const name = typeof value === 'function' ? `#${kind}_${i}` : `${kind}-${i}`;
    this.map.set(name, value);
    return name;
  }
}

function isSink(x: unknown): x is Sink {
  return typeof (x as Sink).write === 'function';
}

/** Builds a list of steps whose input record type is `T`. */
export class StepsBuilder<T> {
  /** @internal */
  readonly steps: StepSpec[] = [];
  /** @internal */
  constructor(protected readonly bindings: Bindings) {}

  protected expr(kind: string, e: Fn<never[], unknown> | string): ExpressionSource {
    return typeof e === 'string' ? e : { fn: this.bindings.bind(kind, e) };
  }

  protected add<U>(step: StepSpec, options?: StepOptions): StepsBuilder<U> {
    this.steps.push(options?.name ? { ...step, name: options.name } : step);
    return this as unknown as StepsBuilder<U>;
  }

  /** Keeps records for which `predicate` is true (a function, or CEL over `event`). */
  filter(predicate: ((event: T) => boolean) | string, options?: StepOptions): this {
    this.add({ filter: this.expr('filter', predicate) }, options);
    return this;
  }

  /** Replaces each record. A function infers the new type; CEL text or a template yields `unknown`. */
  map<U>(f: (event: T) => U, options?: StepOptions): StepsBuilder<U>;
  map(f: string | MapTemplate, options?: StepOptions): StepsBuilder<unknown>;
  map<U>(f: ((event: T) => U) | string | MapTemplate, options?: StepOptions): StepsBuilder<U> {
    const spec = typeof f === 'function' ? { fn: this.bindings.bind('map', f) } : f;
    return this.add<U>({ map: spec }, options);
  }

  /** Replaces each record with the elements of the list it yields. */
  flatMap<U>(f: (event: T) => Iterable<U>, options?: StepOptions): StepsBuilder<U>;
  flatMap(f: string, options?: StepOptions): StepsBuilder<unknown>;
  flatMap<U>(f: ((event: T) => Iterable<U>) | string, options?: StepOptions): StepsBuilder<U> {
    return this.add<U>({ flatMap: this.expr('flatMap', f as Fn<never[], unknown>) }, options);
  }

  /** Joins each record with a looked-up value under `as`. */
  enrich<V, As extends string>(options: EnrichOptions<T, V, As>): StepsBuilder<Enriched<T, V, As>> {
    const lookup: LookupSpec =
      typeof (options.lookup as Lookup).get === 'function'
        ? { ref: this.bindings.bind('lookup', options.lookup) }
        : (options.lookup as TypedLookup<V>).spec;
    const spec: StepSpec = {
      enrich: {
        lookup,
        key: this.expr('enrich', options.key as Fn<never[], unknown>),
        as: options.as,
        ...(options.onMissing ? { onMissing: options.onMissing } : {}),
        ...(options.cache ? { cache: options.cache } : {}),
      },
    };
    return this.add(spec, options);
  }

  /**
   * Aggregates over event-time windows; emits `{ key, windowStart, windowEnd, ...aggregates }`.
   * `aggregate: { clicks: count(), revenue: sum((e) => e.amount) }`.
   */
  window<A extends Record<string, Agg<T, unknown>>, K = unknown>(
    options: WindowOptions<T, K, A>,
  ): StepsBuilder<WindowResult<K, A>> {
    const aggregate: Record<string, AggregateSpec> = {};
    for (const [name, a] of Object.entries(options.aggregate) as [string, Agg<T, unknown>][]) {
      if (a.custom) aggregate[name] = { fn: this.bindings.bind('aggregator', a.custom) };
      else if (a.op === 'count') aggregate[name] = 'count()';
      else {
        const of = typeof a.of === 'string' ? a.of : { fn: this.bindings.bind(a.op, a.of) };
        aggregate[name] = { aggregate: a.op as never, of, ...(a.limit !== undefined ? { limit: a.limit } : {}) };
      }
    }
    const {
      name: _name,
      key,
      aggregate: _a,
      late,
      state,
      ...rest
    } = options as WindowOptions<T, K, A> & Record<string, unknown>;
    const spec: WindowSpec = { ...(rest as object), aggregate } as WindowSpec;
    if (key !== undefined) spec.key = this.expr('windowKey', key as Fn<never[], unknown>);
    if (late !== undefined)
      spec.late = { sink: isSink(late) ? { ref: this.bindings.bind('sink', late) } : (late as SinkSpec) };
    if (state !== undefined)
      spec.state = isStateStore(state) ? { ref: this.bindings.bind('state', state) } : (state as WindowSpec['state']);
    return this.add({ window: spec }, options);
  }

  /** Sets the record key (used by windows); the record is unchanged. */
  keyBy(f: ((event: T) => Key) | string, options?: StepOptions): this {
    this.add({ keyBy: this.expr('keyBy', f) }, options);
    return this;
  }

  /**
   * Sends each record down the first route whose `when` holds; records matching no route go on
   * with the next steps.
   */
  branch(
    routes: {
      name?: string;
      when: ((event: T) => boolean) | string;
      steps: (b: StepsBuilder<T>) => StepsBuilder<unknown>;
    }[],
    options?: StepOptions,
  ): this {
    const specs = routes.map((r) => {
      const sub = new StepsBuilder<T>(this.bindings);
      r.steps(sub);
      if (sub.steps.length === 0) throw new ConfigError('a branch route needs at least one step');
      return { ...(r.name ? { name: r.name } : {}), when: this.expr('branch', r.when), steps: sub.steps };
    });
    this.add({ branch: { routes: specs } }, options);
    return this;
  }

  /** Writes records to a sink (a spec such as `fileSink(...)`, or a sink object) and passes them on. */
  sink(sink: SinkSpec | Sink, options?: StepOptions): this {
    this.add({ sink: isSink(sink) ? { ref: this.bindings.bind('sink', sink) } : sink }, options);
    return this;
  }
}

/** Builds a whole pipeline: a source, then steps. */
export class PipelineBuilder<T> extends StepsBuilder<T> {
  private sourceSpec: SourceSpec | undefined;
  private eventTimeSpec: ExpressionSource | undefined;
  private maxFutureSkew: Duration | undefined;
  private deadLetterSpec: SinkSpec | undefined;
  private description: string | undefined;
  private fieldTypes: Record<string, string> | undefined;

  constructor(private readonly name: string) {
    super(new Bindings());
  }

  describe(text: string): this {
    this.description = text;
    return this;
  }

  source<U>(source: TypedSource<U>): PipelineBuilder<U> {
    this.sourceSpec = source.spec;
    return this as unknown as PipelineBuilder<U>;
  }

  /**
   * Declares input fields and their types (`string`, `number`, `integer`, `boolean`, `object`,
   * `array`, `timestamp`, `any`; `?` = optional): records that do not match are dead-lettered.
   */
  fields(types: Record<string, `${FieldType}` | `${FieldType}?`>): this {
    this.fieldTypes = types;
    return this;
  }

  /**
   * Event time of each record: epoch ms, an ISO-8601 string or a Date. `maxFutureSkew` bounds how
   * far ahead of its arrival time it may be (default: no bound); a record further ahead is
   * dead-lettered (reason `event-time`) before it moves any watermark.
   */
  eventTime(f: ((event: T) => number | string | Date) | string, options: { maxFutureSkew?: Duration } = {}): this {
    this.eventTimeSpec = this.expr('eventTime', f);
    this.maxFutureSkew = options.maxFutureSkew;
    return this;
  }

  deadLetter(sink: SinkSpec | Sink): this {
    this.deadLetterSpec = isSink(sink) ? { ref: this.bindings.bind('deadLetter', sink) } : sink;
    return this;
  }

  override filter(predicate: ((event: T) => boolean) | string, options?: StepOptions): this {
    return super.filter(predicate, options);
  }
  override map<U>(f: (event: T) => U, options?: StepOptions): PipelineBuilder<U>;
  override map(f: string | MapTemplate, options?: StepOptions): PipelineBuilder<unknown>;
  override map<U>(f: ((event: T) => U) | string | MapTemplate, options?: StepOptions): PipelineBuilder<U> {
    return super.map(f as (event: T) => U, options) as PipelineBuilder<U>;
  }
  override flatMap<U>(f: (event: T) => Iterable<U>, options?: StepOptions): PipelineBuilder<U>;
  override flatMap(f: string, options?: StepOptions): PipelineBuilder<unknown>;
  override flatMap<U>(f: ((event: T) => Iterable<U>) | string, options?: StepOptions): PipelineBuilder<U> {
    return super.flatMap(f as (event: T) => Iterable<U>, options) as PipelineBuilder<U>;
  }
  override enrich<V, As extends string>(options: EnrichOptions<T, V, As>): PipelineBuilder<Enriched<T, V, As>> {
    return super.enrich(options) as PipelineBuilder<Enriched<T, V, As>>;
  }
  override window<A extends Record<string, Agg<T, unknown>>, K = unknown>(
    options: WindowOptions<T, K, A>,
  ): PipelineBuilder<WindowResult<K, A>> {
    return super.window(options) as PipelineBuilder<WindowResult<K, A>>;
  }

  /**
   * The finished pipeline: a plain spec plus the bound functions and objects. Relative paths
   * resolve against `baseDir` (default: the working directory); pass `import.meta.dirname` to
   * resolve them next to the pipeline's own file, as a YAML pipeline does.
   */
  build(options: { baseDir?: string } = {}): Pipeline {
    if (!this.sourceSpec) throw new ConfigError(`pipeline \`${this.name}\` has no source; call .source(...) first`);
    const spec: PipelineSpec = {
      version: 1,
      name: this.name,
      source: this.sourceSpec,
      steps: structuredClone(this.steps),
    };
    if (this.description !== undefined) spec.description = this.description;
    if (this.eventTimeSpec !== undefined) spec.eventTime = this.eventTimeSpec;
    if (this.maxFutureSkew !== undefined) spec.maxFutureSkew = this.maxFutureSkew;
    if (this.deadLetterSpec !== undefined) spec.deadLetter = this.deadLetterSpec;
    if (this.fieldTypes !== undefined) spec.fields = { ...this.fieldTypes };
    return { spec, bindings: new Map(this.bindings.map), baseDir: options.baseDir ?? process.cwd() };
  }
}

/** Starts a pipeline definition. */
export function pipeline(name: string): PipelineBuilder<unknown> {
  return new PipelineBuilder<unknown>(name);
}
