// Review of issue 14's firehose sink: its documented default of one call at a time is the one it
// has (the schema, and so the reference, said 4, the field shared with the other sinks), and a
// raised `concurrency` is honoured. Calls are counted in flight through the sink's `client`
// option, each answered on a later turn of the event loop (no clock).
import type { FirehoseClient } from '@aws-sdk/client-firehose';
import { firehoseSink, firehoseSinkDefinition } from '@tributary/sinks';
import { describe, expect, it } from 'vitest';
import { deadLetters, fast, recordsOf } from './records.js';

/** A client answering every PutRecordBatch as taken, a turn later, counting calls in flight. */
function countingClient() {
  let inFlight = 0;
  const seen = { max: 0, calls: 0, records: 0 };
  const client = {
    send: async (command: { input: { Records: unknown[] } }) => {
      inFlight++;
      seen.calls++;
      seen.records += command.input.Records.length;
      seen.max = Math.max(seen.max, inFlight);
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      inFlight--;
      return { FailedPutCount: 0, RequestResponses: command.input.Records.map((_, i) => ({ RecordId: String(i) })) };
    },
    destroy: () => {},
  };
  return { client: client as unknown as FirehoseClient, seen };
}

describe('firehose concurrency', () => {
  it('is one call at a time by default, as its schema says', async () => {
    const { client, seen } = countingClient();
    const sink = firehoseSink({ deliveryStream: 'events', client, ...fast });
    const records = recordsOf(2_000);
    await sink.write(records, deadLetters().context);
    // 2,000 records are at least 4 calls of 500: more than one could be in flight, none was.
    expect(seen.records).toBe(records.length);
    expect(seen.calls).toBeGreaterThanOrEqual(Math.ceil(records.length / 500));
    expect(seen.max).toBe(1);
    const schema = firehoseSinkDefinition.schema as unknown as {
      properties: { concurrency: { description: string } };
    };
    expect(schema.properties.concurrency.description).toMatch(/default 1\b/);
  });

  it('is raised by `concurrency`', async () => {
    const { client, seen } = countingClient();
    const sink = firehoseSink({ deliveryStream: 'events', client, concurrency: 3, ...fast });
    await sink.write(recordsOf(2_000), deadLetters().context);
    expect(seen.max).toBe(3);
  });
});
