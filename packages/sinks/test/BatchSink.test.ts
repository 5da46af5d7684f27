// What every batching sink shares (BatchSink), shown through the SQS, Kinesis and HTTP sinks: a
// failure that says something about one record dead-letters it, a failure that says nothing
// about the records fails the write; in a pipeline, what a sink cannot write reaches the
// dead-letter output naming the sink step; the bytes in flight are bounded.
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { compile, type DeadLetterRecord, MemorySink, parsePipelineYaml } from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { httpSink, kinesisSink, sqsSink } from '@tributary/sinks';
import { describe, expect, it } from 'vitest';
import { startSqs } from '../../../test-support/emulators.js';
import { deadLetters, fast, type Rec, recordsOf, serveHttp } from './records.js';

describe('failures that say nothing about the records', () => {
  it('a record that cannot be encoded is dead-lettered; a call refused for good fails the write instead of dead-lettering its records', async () => {
    const sqs = await startSqs();
    const sink = sqsSink({ queueUrl: sqs.queueUrl, endpoint: sqs.endpoint, ...fast });
    const bigint = envelope({ partitionKey: 'k', sequenceNumber: '1', arrivalTime: 0 }, 's', { n: 1n }, 0);
    const { dead, context } = deadLetters();
    await sink.write([bigint, ...recordsOf(3)], context);
    expect(dead.map((d) => d.error)).toEqual([expect.stringMatching(/^sqs queue test-queue: EncodeFailed: .*BigInt/)]);
    expect(sqs.messages).toHaveLength(3);
    await sink.close();
    await sqs.close();
    const denied = {
      send: async () => {
        throw Object.assign(new Error('User is not authorized to perform: kinesis:PutRecords'), {
          name: 'AccessDeniedException',
        });
      },
      destroy() {},
    } as unknown as KinesisClient;
    const k = kinesisSink({ stream: 'out', client: denied, ...fast });
    const none = deadLetters();
    await expect(k.write(recordsOf(5), none.context)).rejects.toThrow(/kinesis stream out: AccessDeniedException/);
    expect(none.dead).toEqual([]);
  });
});

describe('sinks in a pipeline', () => {
  it('records a sink cannot write reach the dead-letter output with the sink and error; the rest is written', async () => {
    const sqs = await startSqs({
      fail: (e) =>
        (JSON.parse(e.MessageBody) as Rec).n === 3 ? { code: 'InvalidMessageContents', senderFault: true } : undefined,
    });
    const parsed = parsePipelineYaml(
      `version: 1\nname: sinks\nsource: { file: { path: in.jsonl } }\nsteps:\n  - sink: { sqs: { queueUrl: '${sqs.queueUrl}', endpoint: '${sqs.endpoint}' }, name: to-queue }\n`,
      'p.yaml',
    );
    if (!parsed.spec) throw new Error(parsed.issues.map((i) => i.message).join('\n'));
    const dead = new MemorySink<DeadLetterRecord>();
    const c = compile({ spec: parsed.spec, bindings: new Map(), baseDir: '.' }, { deadLetter: dead });
    const result = await c.process({
      shardId: 's0',
      records: recordsOf(6).map((r) => ({
        value: r.value,
        partitionKey: r.partitionKey,
        sequenceNumber: r.sequenceNumber,
        arrivalTime: 0,
      })),
    });
    await c.close();
    expect(sqs.messages).toHaveLength(5);
    expect(result).toMatchObject({ recordsOut: 5, deadLettered: 1 });
    expect(dead.values).toEqual([
      expect.objectContaining({
        reason: 'sink',
        step: 'to-queue',
        sequenceNumber: '4',
        error: 'sqs queue test-queue: InvalidMessageContents: InvalidMessageContents',
      }),
    ]);
    await sqs.close();
  });

  it('bounds the bytes in flight: a slow destination makes writes wait instead of piling up', async () => {
    let peak = 0;
    const server = await serveHttp((_req, _body, res) => setTimeout(() => res.writeHead(200).end(), 20));
    const sink = httpSink({
      url: `${server.url}/`,
      batchSize: 10,
      concurrency: 8,
      maxInFlightBytes: 4096,
      ...fast,
    });
    const timer = setInterval(() => {
      peak = Math.max(peak, sink.inFlightBytes);
    }, 1);
    await Promise.all([
      sink.write(recordsOf(100), deadLetters().context),
      sink.write(recordsOf(100, 'b'), deadLetters().context),
    ]);
    clearInterval(timer);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(4096);
    expect(sink.metrics.records).toBe(200);
    await server.close();
  });
});
