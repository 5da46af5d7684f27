/**
 * Session windows in a shared store (DynamoDB, Redis): one key's sessions live in one item,
 * merged inside an atomic update of it; a due session is claimed inside the same item, and
 * becomes a tombstone once its output is durable (see `shared.ts`).
 */
import type { BatchContext, Push } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { comparePositions, positionOf } from '../position.js';
import type { Aggregator } from './aggregates.js';
import { SharedKeyedWindows } from './SharedKeyedWindows.js';
import type { SessionState } from './shared.js';
import { classifyDelta, type StoredWindow, type WindowRef } from './store.js';
import { type Delta, grainOf } from './WindowOperator.js';

export class SharedSessionWindows extends SharedKeyedWindows {
  /** A key's gap windows of this batch, per grain (with `shard` ordering, one grain: the batch's shard). */
  protected mergeKey(
    state: SessionState,
    deltas: Delta[],
    records: RecordEnvelope[],
    batch: BatchContext,
    late: RecordEnvelope[],
    changed: StoredWindow[],
  ): SessionState {
    const byGrain = new Map<string, Delta[]>();
    for (const d of deltas) {
      const g = byGrain.get(d.shardId);
      if (g) g.push(d);
      else byGrain.set(d.shardId, [d]);
    }
    let next = state;
    for (const group of byGrain.values()) next = this.mergeSession(next, group, records, batch, late, changed);
    return next;
  }

  /** Merges one grain's gap windows of a key into its session state (pure but for `late` and `changed`). */
  private mergeSession(
    state: SessionState,
    deltas: Delta[],
    records: RecordEnvelope[],
    batch: BatchContext,
    late: RecordEnvelope[],
    changed: StoredWindow[],
  ): SessionState {
    const grain = (deltas[0] as Delta).shardId;
    const key = (deltas[0] as Delta).key;
    let minPosition = (deltas[0] as Delta).minPosition;
    let maxPosition = (deltas[0] as Delta).maxPosition;
    for (const d of deltas) {
      if (comparePositions(d.minPosition, minPosition) < 0) minPosition = d.minPosition;
      if (comparePositions(d.maxPosition, maxPosition) > 0) maxPosition = d.maxPosition;
    }
    const touchesAny = (w: WindowRef, ds: readonly WindowRef[]) => ds.some((d) => w.start <= d.end && w.end >= d.start);
    let applied: string | undefined;
    for (const w of [...state.open, ...state.claimed, ...state.emitted]) {
      if (!touchesAny(w, deltas)) continue;
      const p = w.positions[grain];
      if (p !== undefined && (applied === undefined || comparePositions(p, applied) > 0)) applied = p;
    }
    const verdict = classifyDelta(this.orHandled(applied, state, grain), { minPosition, maxPosition });
    if (verdict === 'duplicate') return state;
    if (verdict === 'overlap') {
      const floor = applied as string;
      const newer = records.filter(
        (env) => grainOf(env, batch) === grain && comparePositions(positionOf(env), floor) > 0,
      );
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const again = this.preAggregate(newer, quiet, undefined, key).list.filter((d) => d.shardId === grain);
      return again.length > 0 ? this.mergeSession(state, again, records, batch, late, changed) : state;
    }
    const done = [...state.claimed, ...state.emitted];
    const live: Delta[] = [];
    for (const d of deltas) {
      const hitsDone = touchesAny(d, done);
      if (hitsDone || (this.isClosed(d.end) && !touchesAny(d, state.open))) late.push(...(d.records ?? []));
      else live.push(d);
    }
    if (live.length === 0) return state;
    const touching = state.open.filter((w) => touchesAny(w, live));
    const rest = state.open.filter((w) => !touchesAny(w, live));
    type Part = { start: number; end: number; acc: unknown[]; positions: Record<string, string> };
    const parts: Part[] = [
      ...touching.map((w) => ({ start: w.start, end: w.end, acc: w.acc, positions: w.positions })),
      ...live.map((d) => ({ start: d.start, end: d.end, acc: d.acc, positions: {} })),
    ].sort((a, b) => a.start - b.start);
    const merged: StoredWindow[] = [];
    for (const p of parts) {
      const last = merged[merged.length - 1];
      if (last && p.start <= last.end) {
        last.end = Math.max(last.end, p.end);
        last.acc = last.acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, p.acc[i]));
        for (const [g, pos] of Object.entries(p.positions)) {
          const cur = last.positions[g];
          if (cur === undefined || comparePositions(pos, cur) > 0) last.positions[g] = pos;
        }
      } else {
        merged.push({
          key,
          keyValue: (deltas[0] as Delta).keyValue,
          start: p.start,
          end: p.end,
          acc: [...p.acc],
          positions: { ...p.positions },
        });
      }
    }
    for (const w of merged) {
      const cur = w.positions[grain];
      if (cur === undefined || comparePositions(maxPosition, cur) > 0) w.positions[grain] = maxPosition;
      changed.push(w);
    }
    return { ...state, open: [...rest, ...merged] };
  }

  /** Claims and emits the sessions the watermark has closed; they become tombstones once durable. */
  protected async emitDue(
    batch: BatchContext,
    next: Push,
    claimant: string,
    mine: readonly string[],
    now: number,
  ): Promise<void> {
    const store = this.keyed;
    const claimants = [claimant, ...mine];
    const due = (await store.claimDue((w) => w.end + this.lateness <= this.dueWm, claimants, now)).map((c) => c.window);
    if (due.length === 0) return;
    for (const w of due) this.emit(batch, next, w, w.start, w.end, w.acc);
    // Tombstones go once no redelivery could reach them: `retention` of event time past their end.
    const wm = this.finiteWm;
    batch.afterAck(() => store.emitted(due, (t) => t.end + this.lateness + this.retention <= wm));
  }
}
