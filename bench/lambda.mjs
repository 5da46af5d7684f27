// Lambda handler overhead: a 10,000-record Kinesis event (base64 JSON, ~200 B per record) through
// createHandler with a filter → map → window (in memory) pipeline, against the decode floor —
// base64 + JSON.parse of every record and nothing else — in the same process, rounds interleaved.
// Target: the handler within 1.3x of the floor (µs per record).
import { count, fileSource, pipeline, sum } from '@tributary/core';
import { createHandler } from '@tributary/runtime-lambda';
import { compare, fmt, random, table } from './lib.mjs';

export const name = 'lambda';

/** An event of `n` records; `round` shifts sequence numbers and times, so each round is new data. */
function makeEvent(n, round = 0) {
  const rand = random(5);
  const base = 49_600_000_000_000 + round * n;
  const Records = [];
  for (let i = 0; i < n; i++) {
    const value = {
      type: rand() < 0.9 ? 'click' : 'view',
      user: `user-${Math.floor(rand() * 500)}`,
      page: `/products/${Math.floor(rand() * 1000)}/details`,
      amount: Math.round(rand() * 10000) / 100,
      ts: 1_795_000_000_000 + (round * n + i) * 10,
      agent: 'Mozilla/5.0 (X11; Linux x86_64)',
    };
    Records.push({
      eventID: `shardId-000000000000:${base + i}`,
      eventSource: 'aws:kinesis',
      kinesis: {
        partitionKey: value.user,
        sequenceNumber: String(base + i),
        data: Buffer.from(JSON.stringify(value)).toString('base64'),
        approximateArrivalTimestamp: 1_795_000_000 + i / 100,
      },
    });
  }
  return { Records };
}

export async function run({ records = 10_000, rounds = 15 } = {}) {
  // Every handler invocation gets records it has not seen (a redelivery would be skipped as such).
  const events = Array.from({ length: rounds + 4 }, (_, r) => makeEvent(records, r));
  let next = 0;
  const event = events[0];
  const bytes = event.Records.reduce((n, r) => n + Buffer.byteLength(r.kinesis.data, 'base64'), 0) / records;
  let sink = 0;
  const out = {
    async write(rs) {
      sink += rs.length;
    },
    async close() {},
  };
  const p = pipeline('bench-lambda')
    .source(fileSource({ path: '-' }))
    .eventTime((e) => e.ts)
    .filter((e) => e.type === 'click')
    .map((e) => ({ user: e.user, amount: e.amount, ts: e.ts }))
    .window({ key: (e) => e.user, tumbling: '1m', aggregate: { n: count(), total: sum((e) => e.amount) } })
    .sink(out)
    .build();
  const handler = createHandler(p, { chunkSize: 10_000, log: () => {} });
  await handler.ready;
  const decoder = new TextDecoder();
  let checksum = 0;
  const variants = [
    {
      name: 'decode floor (base64 + JSON.parse)',
      run: async () => {
        for (const r of event.Records)
          checksum += JSON.parse(decoder.decode(Buffer.from(r.kinesis.data, 'base64'))).amount;
        return records;
      },
    },
    {
      name: 'tributary handler (filter → map → window)',
      run: async () => {
        const res = await handler(events[next++ % events.length]);
        if (res.batchItemFailures.length > 0) throw new Error('the handler failed');
        return records;
      },
    },
  ];
  const results = await compare(variants, { rounds, warmup: 3 });
  const [floor, trib] = results;
  const perRecord = (r) => (r.ms * 1000) / records;
  const ratio = trib.ms / floor.ms;
  const rows = results.map((r) => ({
    variant: r.name,
    'µs/record': perRecord(r).toFixed(2),
    'records/s': fmt((records / r.ms) * 1000),
    'vs floor': `${(r.ms / floor.ms).toFixed(2)}x`,
  }));
  const pass = ratio <= 1.3;
  void checksum;
  void sink;
  return {
    text: `${table(rows, ['variant', 'µs/record', 'records/s', 'vs floor'])}\n\n${fmt(records)} records of ~${Math.round(bytes)} B per event; handler = ${ratio.toFixed(2)}x the decode floor (target <= 1.3x): ${pass ? 'PASS' : 'FAIL'}`,
    summary: {
      records,
      recordBytes: Math.round(bytes),
      floorUsPerRecord: perRecord(floor),
      handlerUsPerRecord: perRecord(trib),
      ratio,
      target: 1.3,
      pass,
    },
  };
}
