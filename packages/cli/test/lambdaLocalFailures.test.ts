// lambda-local's summary when records fail, and what the on-failure destination is told: a sink
// that refuses some records fails their batches until the retries run out; a map that throws
// dead-lettered others. Records in count each record handed to the handler once, however often
// it was retried; written, dead-lettered and sent to the on-failure destination are checked
// against an oracle from the input, and each on-failure entry carries the sink's own error.
// In process, on kinesalite with 4 shards.
import { MemorySink, pipeline, type RecordEnvelope } from '@tributary/core';
import { hashKeyOf, type Sink } from '@tributary/core/spi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStream, kinesisClient, putJson, startKinesalite } from '../../../test-support/emulators.js';
import { lambdaLocal } from '../src/lambdaLocal.js';

type Order = { i: number; user: string; refuse: boolean; broken: boolean };

const SHARDS = 4;
let kinesis: { endpoint: string; close: () => Promise<void> };
beforeAll(async () => {
  kinesis = await startKinesalite();
});
afterAll(async () => {
  await kinesis?.close();
});

/** `n` orders: `broken` ones make the map throw (dead-lettered), `refuse` ones the sink refuse. */
function orders(n: number, refuse: (i: number) => boolean, broken: (i: number) => boolean): Order[] {
  return Array.from({ length: n }, (_, i) => ({
    i,
    user: `u${i % 13}`,
    broken: broken(i),
    refuse: !broken(i) && refuse(i),
  }));
}

/** A sink that refuses a whole write when it holds a record to refuse (a downstream that rejects it). */
class RefusingSink implements Sink {
  readonly written: Order[] = [];
  async write(records: readonly RecordEnvelope[]): Promise<void> {
    const bad = records.find((r) => (r.value as Order).refuse);
    if (bad) throw new Error(`downstream refused order ${(bad.value as Order).i}`);
    for (const r of records) this.written.push(r.value as Order);
  }
  async close(): Promise<void> {}
}

async function streamOf(name: string, values: Order[]): Promise<void> {
  const client = kinesisClient(kinesis.endpoint);
  try {
    await createStream(client, name, SHARDS);
    await putJson(client, name, values, (o) => ({ partitionKey: `${o.user}-${o.i}` }));
  } finally {
    client.destroy();
  }
}

function pipelineOn(stream: string, out: Sink, dead: Sink) {
  return pipeline('orders')
    .source<Order>({ spec: { kinesis: { stream, endpoint: kinesis.endpoint } } })
    .map((o: Order) => {
      if (o.broken) throw new Error(`order ${o.i} cannot be read`);
      return o;
    })
    .sink(out)
    .deadLetter(dead)
    .build();
}

type DeadValue = { reason: string; error: string; step: string; data?: string; shardId?: string };
const decoded = (d: DeadValue) => JSON.parse(Buffer.from(d.data as string, 'base64').toString()) as Order;
const ids = (os: Order[]) => os.map((o) => o.i).sort((a, b) => a - b);

describe('lambda-local: counts and the on-failure destination when records fail', () => {
  it('one record a batch, 2 retries: every count equals the oracle; each on-failure entry carries the sink error', async () => {
    const input = orders(
      72,
      (i) => i % 9 === 4,
      (i) => i % 7 === 3,
    );
    await streamOf('one-each', input);
    const out = new RefusingSink();
    const dead = new MemorySink<DeadValue>();
    const r = await lambdaLocal(pipelineOn('one-each', out, dead), { batchSize: 1, maxRetries: 2 });
    const refused = input.filter((o) => o.refuse);
    const broken = input.filter((o) => o.broken);
    const good = input.filter((o) => !o.refuse && !o.broken);
    expect(refused.length).toBeGreaterThan(0);
    expect(broken.length).toBeGreaterThan(0);
    expect(r.counts).toEqual({
      // Each record once, then two retries of each refused one.
      invocations: input.length + 2 * refused.length,
      recordsIn: input.length,
      written: good.length,
      deadLettered: broken.length,
      onFailure: refused.length,
    });
    expect(r.failed).toBe(refused.length);
    expect(r.summary).toBe(
      `orders: ${input.length + 2 * refused.length} invocations, ${input.length} records in (each once, retries not counted), ${good.length} written, ${broken.length} dead-lettered, ${refused.length} sent to the on-failure destination (FAILED: their retries ran out)`,
    );
    expect(ids(out.written)).toEqual(ids(good));
    const onFailure = dead.values.filter((d) => d.reason === 'RetryAttemptsExhausted');
    expect(ids(onFailure.map(decoded))).toEqual(ids(refused));
    for (const d of onFailure) {
      expect(d.step).toBe('lambda');
      // The sink's own error, for the record it refused.
      expect(d.error).toContain(`downstream refused order ${decoded(d).i}`);
    }
    const deadLettered = dead.values.filter((d) => d.reason !== 'RetryAttemptsExhausted');
    expect(deadLettered).toHaveLength(broken.length);
    for (const d of deadLettered) expect(d.error).toMatch(/order \d+ cannot be read/);
  });

  it("the template's defaults (batches of 500, bisect on), 1 retry, 3 lanes a shard: records in counted once; every record accounted for; each entry its own lane's error", async () => {
    const input = orders(
      400,
      (i) => i % 23 === 5,
      (i) => i % 31 === 7,
    );
    await streamOf('defaults', input);
    const out = new RefusingSink();
    const dead = new MemorySink<DeadValue>();
    const LANES = 3;
    const r = await lambdaLocal(pipelineOn('defaults', out, dead), { maxRetries: 1, parallelization: LANES });
    const refused = input.filter((o) => o.refuse);
    expect(r.counts.recordsIn).toBe(input.length);
    // Retried batches were handed over again: more invocations than the shards' first batches.
    expect(r.counts.invocations).toBeGreaterThan(SHARDS);
    // Each record is written, dead-lettered or sent to the on-failure destination: exactly one.
    expect(r.counts.written + r.counts.deadLettered + r.counts.onFailure).toBe(input.length);
    expect(r.counts.written).toBe(out.written.length);
    const onFailure = dead.values.filter((d) => d.reason === 'RetryAttemptsExhausted');
    expect(onFailure).toHaveLength(r.counts.onFailure);
    // Every refused record is among them (its batch never succeeds), none is written.
    const sent = new Set(onFailure.map((d) => decoded(d).i));
    expect(sent.size).toBe(onFailure.length);
    for (const o of refused) expect(sent.has(o.i)).toBe(true);
    expect(out.written.filter((o) => o.refuse)).toEqual([]);
    // The written ones and those sent on do not meet; what is left of the input is dead-lettered:
    // a broken record whose batch failed went to the on-failure destination instead.
    const written = new Set(out.written.map((o) => o.i));
    expect([...written].filter((i) => sent.has(i))).toEqual([]);
    expect(ids(input.filter((o) => !written.has(o.i) && !sent.has(o.i)))).toEqual(
      ids(input.filter((o) => o.broken && !sent.has(o.i))),
    );
    expect(r.counts.deadLettered).toBe(input.filter((o) => o.broken && !sent.has(o.i)).length);
    // Each entry carries the sink's refusal of a refused record sent on with it, in its shard and
    // lane (the lanes of a shard fail at once, each for its own records).
    const refusedIds = new Set(refused.map((o) => o.i));
    const shardOf = new Map(onFailure.map((d) => [decoded(d).i, d.shardId]));
    const lane = (o: Order) => Number(hashKeyOf({ partitionKey: `${o.user}-${o.i}` }) >> 96n) % LANES;
    for (const d of onFailure) {
      const named = Number(/downstream refused order (\d+)/.exec(d.error)?.[1]);
      expect(refusedIds.has(named)).toBe(true);
      expect(sent.has(named)).toBe(true);
      expect(shardOf.get(named)).toBe(d.shardId);
      expect(lane(input[named] as Order)).toBe(lane(decoded(d)));
    }
  });
});
