// Running a pipeline again over input it has seen, against the same shared state (a second
// `tributary run` or `lambda-local`, a replay from the start of the stream): no crash, nothing
// emitted twice, nothing reported late — and a run over more of the stream goes on from where
// the last one ended. Each case failed before the fix (`Invalid time value`, every record late).
import { describe, expect, it } from 'vitest';
import { byWindow, type Rec, reference, toBatch } from '../../core/test/windows/reference.js';
import {
  BACKENDS,
  type BackendName,
  freshName,
  processOf,
  stateYaml,
  TUMBLING,
  useBackends,
  windowProcess,
  yamlPipeline,
} from './backends.js';

const servers = useBackends();

const rec = (seq: number, t: number, shard = 's0', k = 'a'): Rec => ({ k, t, v: seq % 5, shard, seq });

/** Two shards of 60 records each, 10 ms apart, keys a–c. */
function stream(): Rec[][] {
  return ['s0', 's1'].map((shard) =>
    Array.from({ length: 60 }, (_, i) => rec(i + 1, 1000 + i * 10 + (shard === 's1' ? 3 : 0), shard, 'abc'[i % 3])),
  );
}

/** One process over the shards' batches (cut every `cut` records), then the end of its input. */
async function runOver(backend: BackendName, name: string, shards: Rec[][], cut: number) {
  const proc = windowProcess(servers, backend, name);
  for (const s of shards) proc.compiled.registerShard(s[0]?.shard as string);
  for (let from = 0; shards.some((s) => from < s.length); from += cut) {
    for (const s of shards) if (from < s.length) await proc.process(toBatch(s.slice(from, from + cut)));
  }
  await proc.flush();
  await proc.close();
  return proc;
}

for (const backend of BACKENDS) {
  describe(`${backend}: running again over the same input`, () => {
    it('a second run over input already seen emits nothing, reports nothing late and does not crash', async () => {
      const name = freshName();
      const shards = stream();
      const first = await runOver(backend, name, shards, 7);
      expect([...first.out].sort(byWindow)).toEqual(reference(shards.flat(), TUMBLING));
      expect(first.dead.values).toEqual([]);
      const second = await runOver(backend, name, shards, 11);
      expect(second.out).toEqual([]);
      expect(second.dead.values).toEqual([]);
    });

    it('a run over more of the stream goes on from where the last one ended', async () => {
      const name = freshName();
      const all = stream();
      const head = all.map((s) => s.slice(0, 30));
      const first = await runOver(backend, name, head, 9);
      // The whole stream again: the first 30 records of each shard are replays, the rest new.
      const second = await runOver(backend, name, all, 13);
      const emitted = [...first.out, ...second.out].sort(byWindow);
      // Windows the first run's end of input emitted early are not emitted again; the records of
      // the second run that fall in them are late, and every other window is exact.
      const firstIds = new Set(first.out.map((o) => `${o.key}/${o.windowStart}`));
      const lateSeqs = new Set(
        second.dead.values.filter((d) => d.reason === 'late').map((d) => `${d.shardId}/${d.sequenceNumber}`),
      );
      const counted = all.flat().filter((r) => !lateSeqs.has(`${r.shard}/${r.seq}`));
      expect(emitted).toEqual(reference(counted, TUMBLING));
      for (const id of lateSeqs) {
        const [shard, seq] = id.split('/');
        const r = all.flat().find((x) => x.shard === shard && String(x.seq) === seq) as Rec;
        expect(r.seq).toBeGreaterThan(30); // only new records can be late, never a replayed one
        expect(firstIds.has(`${r.k}/${r.t - (r.t % 100)}`)).toBe(true);
      }
      expect(second.dead.values.filter((d) => d.reason !== 'late')).toEqual([]);
    });
  });
}

/** A sink that fails its first `failures` writes (an output that is down for a while). */
function flakySink(failures: number) {
  const values: Record<string, unknown>[] = [];
  let calls = 0;
  return {
    values,
    sink: {
      async write(records: readonly { value: unknown }[]) {
        if (++calls <= failures) throw new Error('output unavailable');
        for (const r of records) values.push(r.value as Record<string, unknown>);
      },
      async close() {},
    },
  };
}

for (const backend of BACKENDS) {
  describe(`${backend}: an emission whose batch failed is not left claimed`, () => {
    for (const how of ['the shard’s next batch', 'the end of input'] as const) {
      it(`a batch that fails after claiming a window, never retried (its retries ran out): ${how} emits it, once`, async () => {
        const out = flakySink(1);
        const yaml = `version: 1\nname: ${freshName()}\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n  - window:\n      key: event.k\n      tumbling: 100\n      aggregate: { n: count() }\n      ${stateYaml(servers, backend)}\n  - sink: { ref: out }\n`;
        const proc = processOf(yamlPipeline(yaml, { out: out.sink }));
        proc.compiled.registerShard('s0');
        await proc.process(toBatch([rec(1, 1000), rec(2, 1050)]));
        // The watermark passes [1000, 1100): this batch claims it, and its output fails.
        await expect(proc.process(toBatch([rec(3, 1300)]))).rejects.toThrow('output unavailable');
        if (how === 'the shard’s next batch') await proc.process(toBatch([rec(4, 1500)]));
        await proc.flush();
        await proc.close();
        const windows = out.values.map((o) => [o.windowStart, o.n]);
        expect(windows.filter(([start]) => start === 1000)).toEqual([[1000, 2]]);
        expect(new Set(windows.map(([start]) => start)).size).toBe(windows.length); // each window once
      });
    }
  });
}
