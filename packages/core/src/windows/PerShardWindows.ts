/**
 * Per-partition stream time (as in Kafka Streams), for a window step whose key is the stream's
 * partition key (`keyIsPartitionKey: true`): each shard then holds every record of its keys, so
 * a window can close on its own shard's watermark instead of waiting for the slowest shard of
 * the stream. One window operator runs per shard and sees only that shard's progress; with a
 * shared store it keeps its state under its own namespace (`<ns>@<shard>`), so a batch reads and
 * writes one shard's progress, not every shard's.
 *
 * The operators are the usual ones (see WindowOperator.ts), each created on its shard's first
 * batch with a context that hands it its shard's watermarks and captures what it would register
 * (its barrier, gauges, ticks); the late output is the step's one sink.
 */
import type {
  BarrierAdvance,
  BarrierRun,
  BatchContext,
  CompileContext,
  NodeInfo,
  Push,
  ShardWindowState,
} from '../compile/types.js';
import { InternalError } from '../errors.js';
import { shardWatermarks } from './watermarks.js';

/** What the window step links: an operator, or this router over one operator per shard. */
export interface LinkedWindows {
  link(): (next: Push) => Push;
  /** State in memory: the oldest record in an open window (see ShardWindowState). */
  retainedPosition?(): string | undefined;
  currentWatermark?(): number;
  resumeReplay?(marks: readonly number[], final: number): void;
}

interface ShardOperator {
  run: BarrierRun | undefined;
  advance: BarrierAdvance | undefined;
  /** The operator's own push (records added inline); undefined: records go through the barrier. */
  inline: Push | undefined;
  gauges: Map<string, () => number>;
  windows: LinkedWindows | undefined;
}

/** What a shard operator's barrier returns: its records go into the step's one barrier. */
const BUFFERED: Push = () => {};

export class PerShardWindows implements LinkedWindows, ShardWindowState {
  private readonly shards = new Map<string, ShardOperator>();
  private next: Push | undefined;
  private readonly latePush: Push | undefined;
  private lastId: string | undefined;
  private last: ShardOperator | undefined;

  constructor(
    private readonly node: NodeInfo,
    private readonly ctx: CompileContext,
    /** Creates the operator of one shard, given a context that sees only that shard. */
    private readonly create: (ctx: CompileContext, shardId: string) => LinkedWindows,
    late: object | undefined,
    tickInterval: number,
  ) {
    this.latePush =
      late === undefined
        ? undefined
        : ctx.sink(late, { name: `${node.name}.late`, kind: 'sink', path: `${node.path}/window/late/sink` });
    ctx.requestTicks(tickInterval);
    // A configuration the operators refuse fails here, when the pipeline is compiled, not at
    // the first batch.
    const probe = this.build('');
    // State in memory: this process alone holds a shard's open windows, so the shard's checkpoint
    // is held back to their oldest record (see CompiledPipeline.shardCheckpointState).
    if (probe.windows?.retainedPosition) ctx.holdsShardState(this);
    for (const name of ['openWindows', 'storedWindows']) {
      ctx.gauge(name, () => {
        let n = 0;
        for (const op of this.shards.values()) n += op.gauges.get(name)?.() ?? 0;
        return n;
      });
    }
  }

  link(): (next: Push) => Push {
    return (next) => {
      this.next = next;
      const buffer = this.ctx.barrier(
        { name: this.node.name, kind: 'window', path: '' },
        async (records, batch, push) => {
          await this.operatorOf(batch.shardId).run?.(records, batch, push);
        },
        next,
        (batch, push, final) => this.advance(batch, push, final),
      );
      return (env, batch) => {
        const op = this.operatorOf(batch.shardId);
        if (op.inline) op.inline(env, batch);
        else buffer(env, batch);
      };
    };
  }

  /**
   * After a shard's batch, its operator moves on; on a tick or the end-of-input flush every
   * shard's does — at the end of an input also those of shards that ended here and have no
   * operator yet (a shared store may hold their windows from an earlier run).
   */
  private async advance(batch: BatchContext, push: Push, final: boolean): Promise<void> {
    const marks = this.ctx.watermarks;
    if (batch.shardId !== '') {
      await this.operatorOf(batch.shardId).advance?.(batch, push, final);
    } else {
      if (final) for (const id of [...marks.ended.keys(), ...marks.shardIds]) this.operatorOf(id);
      for (const op of [...this.shards.values()]) await op.advance?.(batch, push, final);
    }
    // A shard closed (resharded) since: its operator, created if need be, emits what the shard
    // left open (with a shared store, also marks the shard closed in its namespace).
    for (const id of marks.closed) {
      if (this.closedDone.has(id)) continue;
      this.closedDone.add(id);
      batch.afterFailure(() => this.closedDone.delete(id));
      if (batch.shardId !== id) await this.operatorOf(id).advance?.(batch, push, final);
    }
  }

  get name(): string {
    return this.node.name;
  }

  retained(shardId: string): string | undefined {
    return this.shards.get(shardId)?.windows?.retainedPosition?.();
  }

  watermark(shardId: string): number {
    return this.shards.get(shardId)?.windows?.currentWatermark?.() ?? Number.NEGATIVE_INFINITY;
  }

  resume(shardId: string, marks: readonly number[], final: number): void {
    this.operatorOf(shardId).windows?.resumeReplay?.(marks, final);
  }

  release(shardId: string): void {
    this.shards.delete(shardId);
    this.closedDone.delete(shardId);
    if (this.lastId === shardId) {
      this.lastId = undefined;
      this.last = undefined;
    }
  }

  /** Closed shards whose operator has advanced since they closed. */
  private readonly closedDone = new Set<string>();

  private operatorOf(shardId: string): ShardOperator {
    if (shardId === this.lastId && this.last) return this.last;
    let op = this.shards.get(shardId);
    if (!op) {
      op = this.build(shardId);
      this.shards.set(shardId, op);
    }
    this.lastId = shardId;
    this.last = op;
    return op;
  }

  /** A shard's operator, linked in front of the step's next push. */
  private build(shardId: string): ShardOperator {
    const captured: ShardOperator = {
      run: undefined,
      advance: undefined,
      inline: undefined,
      gauges: new Map(),
      windows: undefined,
    };
    const late = this.latePush;
    const ctx: CompileContext = {
      ...this.ctx,
      watermarks: shardWatermarks(this.ctx.watermarks, shardId),
      barrier: (_node, run, _next, advance) => {
        captured.run = run;
        captured.advance = advance;
        return BUFFERED;
      },
      sink: () => {
        if (!late)
          throw new InternalError(`${this.node.name}: a shard's window operator asked for a sink the step has not`);
        return late;
      },
      requestTicks: () => {},
      gauge: (name, read) => {
        captured.gauges.set(name, read);
      },
    };
    const windows = this.create(ctx, shardId);
    captured.windows = windows;
    const push = windows.link()(this.next ?? BUFFERED);
    captured.inline = push === BUFFERED ? undefined : push;
    return captured;
  }
}
