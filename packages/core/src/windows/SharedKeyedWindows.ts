/**
 * What session and sliding windows in a shared store have in common: a key's state lives in one
 * item of the keyed store, and a batch changes each key it touches inside one atomic update of
 * that key's item (the kind's merge runs inside it, and again after a conflict). Keys whose item
 * would outgrow its limit have their records dead-lettered; records the merge finds late go to
 * the late output.
 */
import type { BatchContext, CompileContext, NodeInfo, Push } from '../compile/types.js';
import { keyText, type RecordEnvelope } from '../envelope.js';
import { comparePositions, positionOf } from '../position.js';
import { SharedStoreWindows } from './SharedStoreWindows.js';
import type { SessionState, SharedSessionStore } from './shared.js';
import type { StoredWindow } from './store.js';
import { type Delta, FAILED, grainOf, type WindowSettings } from './WindowOperator.js';

export abstract class SharedKeyedWindows extends SharedStoreWindows {
  protected readonly keyed: SharedSessionStore;

  constructor(settings: WindowSettings, node: NodeInfo, ctx: CompileContext, keyed: SharedSessionStore) {
    // Registered before the base's gauges, as it always was: `stats()` lists its gauges in this order.
    ctx.gauge('storedWindows', () => 0);
    super(settings, node, ctx, keyed.retention);
    this.keyed = keyed;
  }

  link(): (next: Push) => Push {
    const keyed = this.keyed;
    return (next) =>
      this.ctx.barrier(
        { name: this.name, kind: 'window', path: '' },
        (records, batch, push) => this.runKeyed(keyed, records, batch, push),
        next,
        (batch, push, final) => this.advanceShared(keyed, batch, push, final),
      );
  }

  /**
   * Merges a key's deltas of this batch into its state (pure but for what it pushes to `late`
   * and `changed`: it may run again on a newer state). `changed` gets the windows to emit with
   * `emit: updates`.
   */
  protected abstract mergeKey(
    state: SessionState,
    deltas: Delta[],
    records: RecordEnvelope[],
    batch: BatchContext,
    late: RecordEnvelope[],
    changed: StoredWindow[],
  ): SessionState;

  /** The later of `applied` and the grain's position noted as handled in the key's state (see noteLate). */
  protected orHandled(applied: string | undefined, state: SessionState, grain: string): string | undefined {
    const handled = state.handled?.[grain];
    return handled !== undefined && (applied === undefined || comparePositions(handled, applied) > 0)
      ? handled
      : applied;
  }

  /**
   * Under partition-key ordering no shard position says what was handled: once the late output
   * has them, late records' positions are noted in their key's emitted windows (each grain's
   * highest), so a redelivery of one is a duplicate, not late again. A grain's records come in
   * order, so every record of it at or below the noted position was handled.
   */
  private noteLate(store: SharedSessionStore, reported: RecordEnvelope[], batch: BatchContext): void {
    const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
    const byKey = new Map<string, Map<string, string>>();
    for (const env of reported) {
      const key = this.readKey(env, quiet);
      if (key === FAILED) continue;
      const text = keyText(key);
      const grains = byKey.get(text) ?? new Map<string, string>();
      byKey.set(text, grains);
      const grain = grainOf(env, batch);
      const position = positionOf(env);
      const at = grains.get(grain);
      if (at === undefined || comparePositions(position, at) > 0) grains.set(grain, position);
    }
    if (byKey.size === 0) return;
    batch.afterAck(async () => {
      await store.update([...byKey.keys()], (key, state) => {
        // A key with no state left (its tombstones expired) keeps none: nothing to note.
        if (state.open.length === 0 && state.claimed.length === 0 && state.emitted.length === 0) return state;
        const handled = { ...state.handled };
        for (const [grain, p] of byKey.get(key) as Map<string, string>) {
          const at = handled[grain];
          if (at === undefined || comparePositions(p, at) > 0) handled[grain] = p;
        }
        return { ...state, handled };
      });
    });
  }

  private async runKeyed(
    store: SharedSessionStore,
    records: RecordEnvelope[],
    batch: BatchContext,
    next: Push,
  ): Promise<void> {
    if (!this.synced) {
      await this.refreshWatermark(store, [], this.ctx.scheduler.now(), false, false);
      this.synced = true;
    }
    const first = this.preAggregate(records, batch, undefined);
    for (const env of first.late) this.sendLate(env, batch);
    const byKey = new Map<string, Delta[]>();
    for (const d of first.list) {
      const list = byKey.get(d.key);
      if (list) list.push(d);
      else byKey.set(d.key, [d]);
    }
    const results = new Map<string, { late: RecordEnvelope[]; changed: StoredWindow[] }>();
    if (byKey.size > 0) {
      const rejected = await store.update([...byKey.keys()], (key, current) => {
        const late: RecordEnvelope[] = [];
        const changed: StoredWindow[] = [];
        const state = this.mergeKey(current, byKey.get(key) ?? [], records, batch, late, changed);
        results.set(key, { late, changed });
        return state;
      });
      for (const key of rejected.keys()) results.delete(key);
      this.deadLetterKeys(records, batch, rejected);
    }
    const reported: RecordEnvelope[] = [];
    for (const r of results.values()) {
      for (const env of r.late) {
        if (this.isRedelivery(env, batch)) continue;
        this.sendLate(env, batch);
        reported.push(env);
      }
    }
    if (batch.ordering === 'partitionKey' && reported.length > 0) this.noteLate(store, reported, batch);
    this.markSeen(records, batch);
    if (this.updates)
      for (const r of results.values()) for (const w of r.changed) this.emit(batch, next, w, w.start, w.end, w.acc);
  }
}
