// The Lambda benchmark's work, written each way a team might: the Kinesis event, Tributary's
// handler, and what a team would write instead — a record handler for Powertools' batch utility
// (async and sync) and a plain loop — each doing filter → map → a tumbling one-minute count and sum
// per user in a Map, closing the minutes the newest event time has passed. Shared by
// `bench/lambda.mjs` (warm, side by side) and `bench/lambdaFirstEvent.mjs` (a fresh process).
import { random } from './lib.mjs';

/** An event of `n` records; `round` shifts sequence numbers and times, so each round is new data. */
export function makeEvent(n, round = 0) {
  const rand = random(5);
  const base = 49_600_000_000_000 + round * n;
  const Records = [];
  for (let i = 0; i < n; i++) {
    const value = {
      type: rand() < 0.9 ? 'click' : 'view',
      user: `user-${Math.floor(rand() * 500)}`,
      session: `s-${Math.floor(rand() * 2 ** 48)
        .toString(16)
        .padStart(12, '0')}`,
      page: `/products/${Math.floor(rand() * 1000)}/details`,
      amount: Math.round(rand() * 10000) / 100,
      ts: 1_795_000_000_000 + (round * n + i) * 10,
      agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
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
  // As the Lambda runtime hands it over: parsed from the invocation's JSON payload (flat strings).
  return JSON.parse(JSON.stringify({ Records }));
}

/** Tributary's handler for the work (filter → map → window in memory → sink) and its sink's count. */
export async function tributaryHandler() {
  const { count, fileSource, pipeline, sum } = await import('@tributary/core');
  const { createHandler } = await import('@tributary/runtime-lambda');
  const out = {
    written: 0,
    async write(rs) {
      out.written += rs.length;
    },
    async close() {},
  };
  const p = pipeline('bench-lambda')
    .source(fileSource({ path: '-' }))
    .eventTime((e) => e.ts)
    .filter((e) => e.type === 'click')
    .map((e) => ({ user: e.user, amount: e.amount, ts: e.ts }))
    .window({
      key: (e) => e.user,
      tumbling: '1m',
      aggregate: { n: count(), total: sum((e) => e.amount) },
      state: { memory: { volatile: true } },
    })
    .sink(out)
    .build();
  const handler = createHandler(p, { chunkSize: 10_000, log: () => {} });
  await handler.ready;
  return { handler, out };
}

/**
 * The windows a team keeps by hand: one Map of (user, minute) → count and sum; a minute closes
 * when the newest event time has passed its end, and goes to `closed`.
 */
function minuteWindows() {
  const windows = new Map();
  let newest = Number.NEGATIVE_INFINITY;
  const closed = [];
  return {
    closed,
    add(m) {
      if (m.ts > newest) newest = m.ts;
      const start = m.ts - (m.ts % 60_000);
      const id = `${m.user}|${start}`;
      let w = windows.get(id);
      if (w === undefined) {
        w = { key: m.user, windowStart: start, windowEnd: start + 60_000, n: 0, total: 0 };
        windows.set(id, w);
      }
      w.n++;
      w.total += m.amount;
    },
    close() {
      for (const [id, w] of windows)
        if (w.windowEnd <= newest) {
          closed.push(w);
          windows.delete(id);
        }
    },
  };
}

const decode = (r) => JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8'));

/** The work as a plain loop over the event's records. */
export function handLoopHandler() {
  const w = minuteWindows();
  const handler = async (event) => {
    for (const r of event.Records) {
      const e = decode(r);
      if (e.type !== 'click') continue;
      w.add({ user: e.user, amount: e.amount, ts: e.ts });
    }
    w.close();
    return { batchItemFailures: [] };
  };
  return { handler, closed: w.closed };
}

/**
 * The work as a Powertools batch record handler: `processPartialResponse` with a `BatchProcessor`
 * (`sync` false: an async record handler) or `processPartialResponseSync` with a `BatchProcessorSync`.
 */
export async function powertoolsHandler(sync) {
  const pt = await import('@aws-lambda-powertools/batch');
  const w = minuteWindows();
  const record = (r) => {
    const e = decode(r);
    if (e.type !== 'click') return;
    w.add({ user: e.user, amount: e.amount, ts: e.ts });
  };
  if (sync) {
    const processor = new pt.BatchProcessorSync(pt.EventType.KinesisDataStreams);
    const handler = async (event) => {
      const res = pt.processPartialResponseSync(event, record, processor);
      w.close();
      return res;
    };
    return { handler, closed: w.closed };
  }
  const processor = new pt.BatchProcessor(pt.EventType.KinesisDataStreams);
  const recordAsync = async (r) => record(r);
  const handler = async (event) => {
    const res = await pt.processPartialResponse(event, recordAsync, processor);
    w.close();
    return res;
  };
  return { handler, closed: w.closed };
}
