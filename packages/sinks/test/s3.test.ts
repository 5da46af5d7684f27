// The S3 sink against a local S3-compatible server (s3rver): objects reassemble to the input,
// buffering by size and time, gzip, multipart for large objects, replays overwrite, and records
// that cannot be serialised go under processing-failed/.
import { gunzipSync } from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { RecordEnvelope } from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { s3Sink } from '@tributary/sinks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, s3Client, startS3 } from '../../../test-support/emulators.js';

let s3: Emulator;
let client: S3Client;
beforeAll(async () => {
  s3 = await startS3();
  client = s3Client(s3.endpoint);
  for (const b of ['events', 'big', 'replay', 'broken']) await client.send(new CreateBucketCommand({ Bucket: b }));
});
afterAll(async () => {
  client?.destroy();
  await s3?.close();
});

const recordsOf = (n: number, pad = 40, from = 0): RecordEnvelope[] =>
  Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return envelope(
      { partitionKey: 'k', sequenceNumber: String(1000 + i), arrivalTime: Date.UTC(2026, 10, 21, 13, 5) },
      'shardId-000000000001',
      { id: i, text: `${i}:${'y'.repeat(pad)}` },
      0,
    );
  });

async function objects(bucket: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const list = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  for (const o of list.Contents ?? []) {
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
    const bytes = Buffer.from(
      await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    out.set(o.Key as string, (o.Key as string).endsWith('.gz') ? gunzipSync(bytes).toString() : bytes.toString());
  }
  return out;
}

const linesOf = (texts: Iterable<string>) =>
  [...texts].flatMap((t) => t.split('\n').filter(Boolean)).map((l) => JSON.parse(l));

describe('s3 sink (s3rver)', () => {
  it('buffers by size, gzips, names objects by time partition and first record; the objects reassemble to the input', async () => {
    const sink = s3Sink({
      bucket: 'events',
      prefix: 'clicks/',
      bufferSize: 8 * 1024,
      bufferInterval: 50,
      gzip: true,
      client,
    });
    const records = recordsOf(600);
    await sink.write(records.slice(0, 250));
    await sink.write(records.slice(250));
    await sink.close();
    const got = await objects('events');
    expect(got.size).toBeGreaterThan(3); // ~46 KB of JSON Lines in 8 KiB objects
    for (const key of got.keys())
      expect(key).toMatch(/^clicks\/2026\/11\/21\/13\/shardId-000000000001-\d+-[0-9a-f]{12}\.jsonl\.gz$/);
    expect(linesOf(got.values()).sort((a, b) => a.id - b.id)).toEqual(records.map((r) => r.value));
  });

  it('a write waits for its buffer: the time limit flushes a small one; a replay overwrites the same object', async () => {
    const sink = s3Sink({ bucket: 'replay', bufferInterval: 30, client });
    const batch = recordsOf(20);
    await sink.write(batch); // resolves once the 30 ms interval has written the object
    expect(sink.objects).toHaveLength(1);
    await sink.write(batch); // the same batch again (a replay from the checkpoint)
    await sink.close();
    const got = await objects('replay');
    expect([...got.keys()]).toEqual([sink.objects[0]]);
    expect(linesOf(got.values())).toEqual(batch.map((r) => r.value));
  });

  it('retries a write the server refused with a 503; the object is written once', async () => {
    let refused = 0;
    const flaky = new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver);
        return async (command: unknown) => {
          if (refused < 2) {
            refused++;
            throw Object.assign(new Error('Please reduce your request rate.'), {
              name: 'SlowDown',
              $metadata: { httpStatusCode: 503 },
            });
          }
          return target.send(command as never);
        };
      },
    });
    await client.send(new CreateBucketCommand({ Bucket: 'flaky' }));
    const sink = s3Sink({ bucket: 'flaky', bufferInterval: 10, client: flaky, retry: { minDelay: 1, maxDelay: 5 } });
    const records = recordsOf(50);
    await sink.write(records);
    await sink.close();
    expect(refused).toBe(2);
    expect(sink.metrics.retries).toBe(2);
    const got = await objects('flaky');
    expect(got.size).toBe(1);
    expect(linesOf(got.values())).toEqual(records.map((r) => r.value));
  });

  it('records sharing a source record (window results, flatMap) fill several objects without overwriting each other', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'shared' }));
    const sink = s3Sink({ bucket: 'shared', bufferSize: 1024, bufferInterval: 20, client });
    const source = { partitionKey: 'k', sequenceNumber: '5000', arrivalTime: 0 };
    const results = Array.from({ length: 60 }, (_, i) =>
      envelope(source, 's0', { key: `user-${i}`, n: i, pad: 'z'.repeat(60) }, 0),
    );
    await sink.write(results);
    await sink.close();
    const got = await objects('shared');
    expect(got.size).toBeGreaterThan(3);
    expect(linesOf(got.values()).sort((a, b) => a.n - b.n)).toEqual(results.map((r) => r.value));
  });

  it('writes objects over 5 MiB by multipart upload', async () => {
    const sink = s3Sink({ bucket: 'big', bufferSize: 12 * 1024 * 1024, bufferInterval: 50, client });
    const records = recordsOf(11_000, 1000); // ~11 MB
    await sink.write(records);
    await sink.close();
    const got = await objects('big');
    expect(got.size).toBe(1);
    expect(linesOf(got.values())).toEqual(records.map((r) => r.value));
  });

  it('records that cannot be serialised go under processing-failed/, the rest as usual', async () => {
    const sink = s3Sink({ bucket: 'broken', bufferInterval: 20, client });
    const good = recordsOf(3);
    const bad = envelope(
      { partitionKey: 'k', sequenceNumber: '77', arrivalTime: 0, data: '{"n":1}' },
      's9',
      { n: 10n },
      0,
    );
    await sink.write([...good, bad]);
    await sink.close();
    const got = await objects('broken');
    const failed = [...got].filter(([k]) => k.startsWith('processing-failed/')).map(([, v]) => v);
    expect(linesOf(failed)).toEqual([
      {
        errorCode: 'SerializationFailed',
        errorMessage: 'Do not know how to serialize a BigInt',
        recordId: 's9/77',
        rawData: Buffer.from('{"n":1}').toString('base64'),
      },
    ]);
    expect(linesOf([...got].filter(([k]) => !k.startsWith('processing-failed/')).map(([, v]) => v))).toEqual(
      good.map((r) => r.value),
    );
  });
});
