// The SQS sink against a loopback server speaking the SQS JSON protocol: every record sent once
// in batches of 10, transient entry failures retried alone, sender faults and messages over
// 256 KiB dead-lettered, values no JSON can hold dead-lettered while the rest is sent — and an
// SQS dead-letter output that receives a writable form of every dead letter.
import { compile, type DeadLetterRecord, fileSource, MemorySink, pipeline } from '@tributary/core';
import { envelope, type Sink } from '@tributary/core/spi';
import { sqsSink } from '@tributary/sinks';
import { describe, expect, it } from 'vitest';
import { emulatorConfig, startSqs } from '../../../test-support/emulators.js';
import {
  circular,
  deadLetters,
  deepValue,
  expectEncodeFailures,
  fast,
  hostileBatch,
  type Rec,
  recordsOf,
} from './records.js';

describe('sqs sink (loopback SQS JSON protocol)', () => {
  it('sends every record once in batches of 10; transient entry failures are retried alone, sender faults dead-lettered', async () => {
    const sqs = await startSqs({
      fail: (entry, attempt) => {
        const n = (JSON.parse(entry.MessageBody) as Rec).n;
        if (n % 11 === 0 && attempt === 1) return { code: 'ServiceUnavailable', senderFault: false };
        if (n === 7) return { code: 'InvalidParameterValue', senderFault: true };
        return undefined;
      },
    });
    const sink = sqsSink({ queueUrl: sqs.queueUrl, endpoint: sqs.endpoint, ...fast });
    const records = recordsOf(95);
    const big = envelope(
      { partitionKey: 'k', sequenceNumber: '999', arrivalTime: 0 },
      's',
      { blob: 'x'.repeat(270_000) },
      0,
    );
    const { dead, context } = deadLetters();
    await sink.write([...records, big], context);
    await sink.close();
    expect(dead.map((d) => d.error)).toEqual([
      expect.stringMatching(/^sqs queue test-queue: MessageTooLong: message of \d+ bytes is over the 256 KiB limit$/),
      'sqs queue test-queue: InvalidParameterValue: InvalidParameterValue',
    ]);
    const expected = records.filter((r) => r.value.n !== 7);
    expect(sqs.messages.map((m) => m.MessageBody).sort()).toEqual(expected.map((r) => JSON.stringify(r.value)).sort());
    expect(sqs.messages.map((m) => m.MessageAttributes?.['tributary-record-id']?.StringValue).sort()).toEqual(
      expected.map((r) => `shardId-000000000000/${r.sequenceNumber}`).sort(),
    );
    // 95 records in 10 calls; each of the 9 calls with a throttled entry retries that entry alone.
    expect(sqs.calls).toBe(10 + 9);
    await sqs.close();
  });
});

describe('sqs sink: hostile values', () => {
  it('dead-letters what it cannot encode (circular, nested too deeply) and sends the rest', async () => {
    const sqs = await startSqs();
    const sink = sqsSink({ queueUrl: sqs.queueUrl, endpoint: sqs.endpoint, ...fast });
    const { dead, context } = deadLetters();
    await sink.write(hostileBatch(), context);
    expectEncodeFailures(dead, 'sqs queue test-queue');
    expect(sqs.messages.map((m) => JSON.parse(m.MessageBody).id).sort()).toEqual(['g1', 'g3', 'g5']);
    await sink.close();
    await sqs.close();
  });

  it('as the dead-letter output, receives a writable form of every dead letter, so a batch of them never fails (it would be delivered again for ever)', async () => {
    const sqs = await startSqs();
    const deadLetter: Sink = sqsSink({
      queueUrl: sqs.queueUrl,
      ...emulatorConfig(sqs.endpoint),
      ...fast,
    } as Parameters<typeof sqsSink>[0]);
    const out = new MemorySink();
    const made: Record<string, () => unknown> = {
      circular,
      deep: () => deepValue(6000),
      bigint: () => ({ id: 'bigint', n: 2n ** 70n }),
    };
    const p = pipeline('dlq')
      .source(fileSource<{ kind: string }>({ path: 'x' }))
      .map((e) => (made[e.kind] ?? (() => e))())
      .filter((v) => {
        if ((v as { id?: string }).id !== undefined) throw new Error('refused');
        return true;
      })
      .sink(out)
      .build();
    const c = compile(p, { deadLetter });
    const kinds = ['circular', 'plain', 'deep', 'bigint'];
    const result = await c.process({
      shardId: 's0',
      records: kinds.map((kind, i) => ({
        data: JSON.stringify({ kind }),
        partitionKey: 'k',
        sequenceNumber: String(i + 1),
        arrivalTime: 0,
      })),
    });
    await c.close();
    expect(result).toMatchObject({ recordsOut: 1, deadLettered: 3 });
    const letters = sqs.messages.map((m) => JSON.parse(m.MessageBody) as DeadLetterRecord);
    expect(letters.map((d) => [d.sequenceNumber, d.reason, d.error]).sort()).toEqual([
      ['1', 'function', 'refused'],
      ['3', 'function', 'refused'],
      ['4', 'function', 'refused'],
    ]);
    const byId = new Map(letters.map((d) => [(d.value as { id: string }).id, d.value]));
    expect(byId.get('circular')).toEqual({ id: 'circular', self: '[circular]' });
    expect(byId.get('bigint')).toEqual({ id: 'bigint', n: '1180591620717411303424' });
    expect(JSON.stringify(byId.get('deep'))).toContain('[nested deeper than 512 levels]');
    await sqs.close();
  });
});
