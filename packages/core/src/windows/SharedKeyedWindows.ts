/**
 * What session and sliding windows in a shared store have in common: a key's state lives in one
 * item of the keyed store, and a batch changes each key it touches inside one atomic update of
 * that key's item (the kind's merge runs inside it, and again after a conflict). Keys whose item
 * would outgrow its limit have their records dead-lettered; records the merge finds late go to
 * the late output.
 */
import type { BatchContext, CompileContext, NodeInfo, Push } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { SharedStoreWindows } from './SharedStoreWindows.js';
import type { SessionState, SharedSessionStore } from './shared.js';
import type { StoredWindow } from './store.js';
import type { Delta, WindowSettings } from './WindowOperator.js';

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
    for (const r of results.values())
      for (const env of r.late) if (!this.isRedelivery(env, batch)) this.sendLate(env, batch);
    this.markSeen(records, batch);
    if (this.updates)
      for (const r of results.values()) for (const w of r.changed) this.emit(batch, next, w, w.start, w.end, w.acc);
  }
}
