// The Kinesis sink against kinesalite, with transient failures injected: every record arrives
// once (count and content), partial failures are retried only for the failed entries, records
// that can never be written reach the dead-letter output, values no JSON can hold are
// dead-lettered and the rest written.
import type { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { envelope } from '@tributary/core/spi';
import { kinesisSink } from '@tributary/sinks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStream,
  type Emulator,
  kinesisClient,
  startKinesalite,
  streamData,
} from '../../../test-support/emulators.js';
import { deadLetters, expectEncodeFailures, fast, hostileBatch, recordsOf } from './records.js';

let kinesis: Emulator;
beforeAll(async () => {
  kinesis = await startKinesalite();
});
afterAll(async () => {
  await kinesis?.close();
});

describe('kinesis sink (kinesalite)', () => {
  it('writes every record once in calls of 500, retrying only the entries the answer failed', async () => {
    const client = kinesisClient(kinesis.endpoint);
    await createStream(client, 'out', 3);
    // The real client, with every 7th entry of a first attempt failed as throttled.
    const sent: number[] = [];
    let retried = 0;
    const seen = new Set<string>();
    const stingy = {
      send: async (command: PutRecordsCommand) => {
        const entries = command.input.Records ?? [];
        sent.push(entries.length);
        const fail = entries.map((e, i) => {
          const body = Buffer.from(e.Data as Uint8Array).toString();
          if (seen.has(body)) retried++;
          const first = !seen.has(body);
          seen.add(body);
          return first && i % 7 === 0;
        });
        const ok = entries.filter((_, i) => !fail[i]);
        const res = ok.length
          ? await client.send(new (command.constructor as typeof PutRecordsCommand)({ StreamName: 'out', Records: ok }))
          : { Records: [] };
        let j = 0;
        return {
          FailedRecordCount: fail.filter(Boolean).length,
          Records: fail.map((f) =>
            f ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'slow down' } : res.Records?.[j++],
          ),
        };
      },
      destroy() {},
    } as unknown as KinesisClient;
    const sink = kinesisSink({ stream: 'out', client: stingy, partitionKey: (env) => env.partitionKey, ...fast });
    const records = recordsOf(1200);
    const { dead, context } = deadLetters();
    await sink.write(records, context);
    expect(dead).toEqual([]);
    // One call at a time (the default, for per-key order): each call, then the retry of its throttled entries.
    expect(sent).toEqual([500, 72, 500, 72, 200, 29]);
    const failedFirst = records.filter((_, i) => (i % 500) % 7 === 0).length;
    expect(retried).toBe(failedFirst); // only the failed entries were sent again
    const got = await streamData(client, 'out');
    expect(got.sort()).toEqual(records.map((r) => JSON.stringify(r.value)).sort());
    expect(sink.metrics).toMatchObject({ records: 1200, deadLettered: 0 });
    expect(sink.metrics.retries).toBeGreaterThan(0);
    client.destroy();
  });

  it('dead-letters a record over 1 MiB and one the stream refuses for good, naming the sink and the code', async () => {
    const refusing = {
      send: async (command: PutRecordsCommand) => ({
        FailedRecordCount: 1,
        Records: (command.input.Records ?? []).map((_, i) =>
          i === 0
            ? { ErrorCode: 'KMSAccessDeniedException', ErrorMessage: 'no key' }
            : { SequenceNumber: '1', ShardId: 's' },
        ),
      }),
      destroy() {},
    } as unknown as KinesisClient;
    const sink = kinesisSink({ stream: 'out', client: refusing, ...fast });
    const big = envelope(
      { partitionKey: 'k', sequenceNumber: '9', arrivalTime: 0 },
      's',
      { blob: 'x'.repeat(1_100_000) },
      0,
    );
    const { dead, context } = deadLetters();
    await sink.write([...recordsOf(3), big], context);
    expect(dead.map((d) => d.error)).toEqual([
      `kinesis stream out: RecordTooLarge: record of ${JSON.stringify(big.value).length + 1} bytes is over the 1 MiB limit`,
      'kinesis stream out: KMSAccessDeniedException: no key',
    ]);
  });
});

describe('kinesis sink: hostile values', () => {
  it('dead-letters what it cannot encode (circular, nested too deeply) and writes the rest', async () => {
    const sent: string[] = [];
    const client = {
      send: async (cmd: { input: { Records: { Data: Uint8Array }[] } }) => {
        for (const r of cmd.input.Records) sent.push(Buffer.from(r.Data).toString());
        return { FailedRecordCount: 0, Records: cmd.input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })) };
      },
      destroy() {},
    } as unknown as KinesisClient;
    const sink = kinesisSink({ stream: 'out', client, ...fast });
    const { dead, context } = deadLetters();
    await sink.write(hostileBatch(), context);
    expectEncodeFailures(dead, 'kinesis stream out');
    expect(sent.map((s) => JSON.parse(s).id)).toEqual(['g1', 'g3', 'g5']);
  });
});
