// The Firehose sink through the real AWS SDK against a loopback server speaking Firehose's JSON
// 1.1 protocol (no Firehose emulator exists): every record arrives once and in order, calls are
// split at 500 records and at 4 MiB, only the entries an answer reports failed are sent again,
// whole calls failed transiently are sent again, a record over 1,000 KiB is dead-lettered, and a
// YAML pipeline with `sink: { firehose: … }` validates and runs end to end, sending only what its
// declared permissions allow.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordEnvelope } from '@tributary/core';
import { compile, parsePipelineYaml, runPipeline } from '@tributary/core';
import { firehoseSink, firehoseSinkDefinition } from '@tributary/sinks';
import { afterEach, describe, expect, it } from 'vitest';
import { componentStatements } from '../../cli/src/synth/iam.js';
import { deadLetters, expectEncodeFailures, fast, hostileBatch, recordOf, recordsOf, serveHttp } from './records.js';

const MiB = 1024 * 1024;
const MAX_RECORD = 1000 * 1024;

/** One PutRecordBatch call as the server saw it: the target header, the stream, each record's data. */
interface Call {
  target: string;
  stream: string;
  data: string[];
}

/** What the server answers to a call: `undefined` to take it (entries may still fail), or a whole-call error. */
type CallFault = { status: number; type: string } | undefined;

/**
 * A loopback Firehose (JSON 1.1: `X-Amz-Target: Firehose_20150804.PutRecordBatch`, records' Data
 * in base64). `failCall(n)` may fail the n-th call (from 0) whole; `failEntry(data, attempt)` may
 * fail one entry (ServiceUnavailableException), `attempt` counting how often that data was sent.
 * `delivered` holds the data of every accepted entry, in the order the server took them.
 */
async function startFirehose(
  options: { failCall?: (n: number) => CallFault; failEntry?: (data: string, attempt: number) => boolean } = {},
) {
  const calls: Call[] = [];
  const delivered: string[] = [];
  const attempts = new Map<string, number>();
  const server = await serveHttp((req, body, res) => {
    const target = String(req.headers['x-amz-target']);
    const request = JSON.parse(body) as { DeliveryStreamName: string; Records: { Data: string }[] };
    const data = request.Records.map((r) => Buffer.from(r.Data, 'base64').toString('utf8'));
    const n = calls.length;
    calls.push({ target, stream: request.DeliveryStreamName, data });
    const reply = (status: number, payload: unknown) =>
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(payload));
    const fault = options.failCall?.(n);
    if (fault) return reply(fault.status, { __type: fault.type, message: `${fault.type} (call ${n})` });
    let failed = 0;
    const responses = data.map((d, i) => {
      const attempt = attempts.get(d) ?? 0;
      attempts.set(d, attempt + 1);
      if (options.failEntry?.(d, attempt)) {
        failed++;
        return { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' };
      }
      delivered.push(d);
      return { RecordId: `${n}-${i}` };
    });
    reply(200, { FailedPutCount: failed, Encrypted: false, RequestResponses: responses });
  });
  return { ...server, calls, delivered };
}

let servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});
async function firehose(options?: Parameters<typeof startFirehose>[0]) {
  const s = await startFirehose(options);
  servers.push(s);
  return s;
}

/** Each record's line as the sink must send it: its value's JSON and a newline (the oracle). */
const lineOf = (env: RecordEnvelope) => `${JSON.stringify(env.value)}\n`;

describe('firehose sink (JSON 1.1 server, real SDK)', () => {
  it('empty input makes no call', async () => {
    const server = await firehose();
    const sink = firehoseSink({ deliveryStream: 'events', endpoint: server.url, ...fast });
    await sink.write([], deadLetters().context);
    await sink.close();
    expect(server.calls).toEqual([]);
  });

  it('one record: its JSON and a newline, to the named delivery stream', async () => {
    const server = await firehose();
    const sink = firehoseSink({ deliveryStream: 'events', endpoint: server.url, ...fast });
    const records = recordsOf(1);
    await sink.write(records, deadLetters().context);
    await sink.close();
    expect(server.calls).toEqual([
      { target: 'Firehose_20150804.PutRecordBatch', stream: 'events', data: records.map(lineOf) },
    ]);
  });

  it('every record arrives exactly once and in order, in calls of at most 500 records', async () => {
    const server = await firehose();
    const sink = firehoseSink({ deliveryStream: 'events', endpoint: server.url, ...fast });
    const records = recordsOf(1234);
    const { dead, context } = deadLetters();
    await sink.write(records, context);
    await sink.close();
    expect(dead).toEqual([]);
    expect(server.delivered).toEqual(records.map(lineOf));
    expect(server.calls.map((c) => c.data.length)).toEqual([500, 500, 234]);
    expect(sink.metrics).toMatchObject({ records: 1234, calls: 3, retries: 0, deadLettered: 0 });
    // The objects Firehose writes are JSON Lines: their concatenation parses line by line to the input.
    const text = server.delivered.join('');
    expect(
      text
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l)),
    ).toEqual(records.map((r) => r.value));
  });

  it('splits calls at 4 MiB: each call is under it, and the next record would not have fitted', async () => {
    const server = await firehose();
    const sink = firehoseSink({ deliveryStream: 'big', endpoint: server.url, ...fast });
    // Sizes vary, so the split is not a fixed count.
    const records = Array.from({ length: 40 }, (_, i) =>
      recordOf({ i, pad: 'p'.repeat(150_000 + ((i * 37_001) % 200_000)) }, i + 1),
    );
    await sink.write(records, deadLetters().context);
    await sink.close();
    const bytes = (c: Call) => c.data.reduce((n, d) => n + Buffer.byteLength(d), 0);
    expect(server.calls.length).toBeGreaterThan(1);
    expect(server.calls.flatMap((c) => c.data)).toEqual(records.map(lineOf));
    for (const [i, c] of server.calls.entries()) {
      expect(bytes(c)).toBeLessThanOrEqual(4 * MiB);
      const next = server.calls[i + 1];
      if (next) expect(bytes(c) + Buffer.byteLength(next.data[0] as string)).toBeGreaterThan(4 * MiB);
    }
  });

  it('sends again only the entries an answer reports failed, until each is taken', async () => {
    // Records whose n is a multiple of 7 fail twice, those of 11 once.
    const nOf = (d: string) => (JSON.parse(d) as { n: number }).n;
    const server = await firehose({
      failEntry: (d, attempt) => (nOf(d) % 7 === 0 && attempt < 2) || (nOf(d) % 11 === 0 && attempt < 1),
    });
    const sink = firehoseSink({ deliveryStream: 'events', endpoint: server.url, ...fast });
    const records = recordsOf(700);
    const { dead, context } = deadLetters();
    await sink.write(records, context);
    await sink.close();
    expect(dead).toEqual([]);
    // Each record taken exactly once.
    expect([...server.delivered].sort()).toEqual(records.map(lineOf).sort());
    expect(new Set(server.delivered).size).toBe(700);
    // The first call of each group of 500 carries all of them; each later call only what the one before it had failed.
    const first = (n: number) => n % 7 === 0 || n % 11 === 0;
    const second = (n: number) => n % 7 === 0;
    const group = (from: number, to: number, keep: (n: number) => boolean) =>
      records
        .slice(from, to)
        .filter((r) => keep(r.value.n))
        .map(lineOf);
    expect(server.calls.map((c) => c.data)).toEqual([
      group(0, 500, () => true),
      group(0, 500, first),
      group(0, 500, second),
      group(500, 700, () => true),
      group(500, 700, first),
      group(500, 700, second),
    ]);
    expect(sink.metrics).toMatchObject({ records: 700, calls: 6, retries: 4 });
  });

  it('whole calls failed transiently (500 ServiceUnavailableException, 503 InternalFailure) are sent again; every record once', async () => {
    const faults: CallFault[] = [
      { status: 500, type: 'ServiceUnavailableException' },
      { status: 503, type: 'InternalFailure' },
    ];
    const server = await firehose({ failCall: (n) => faults[n] });
    const sink = firehoseSink({ deliveryStream: 'events', endpoint: server.url, ...fast });
    const records = recordsOf(300);
    await sink.write(records, deadLetters().context);
    await sink.close();
    expect(server.calls.map((c) => c.data.length)).toEqual([300, 300, 300]);
    expect(server.delivered).toEqual(records.map(lineOf));
    expect(sink.metrics.retries).toBe(2);
  });

  it('a call refused for good (ResourceNotFoundException) fails the write at once: nothing dead-lettered, no retry', async () => {
    const server = await firehose({ failCall: () => ({ status: 400, type: 'ResourceNotFoundException' }) });
    const sink = firehoseSink({ deliveryStream: 'missing', endpoint: server.url, ...fast });
    const { dead, context } = deadLetters();
    await expect(sink.write(recordsOf(10), context)).rejects.toThrow(
      /firehose delivery stream missing: ResourceNotFoundException/,
    );
    await sink.close();
    expect(dead).toEqual([]);
    expect(server.calls).toHaveLength(1);
  });

  it('an entry still failing when the retry budget is spent fails the write (the batch is retried), the others are taken', async () => {
    const stuck = (d: string) => (JSON.parse(d) as { n: number }).n === 3;
    const server = await firehose({ failEntry: (d) => stuck(d) });
    const sink = firehoseSink({
      deliveryStream: 'events',
      endpoint: server.url,
      retry: { maxAttempts: 4, minDelay: 1, maxDelay: 5 },
    });
    const records = recordsOf(10);
    const { dead, context } = deadLetters();
    await expect(sink.write(records, context)).rejects.toThrow(
      /firehose delivery stream events: 1 record\(s\) still failing after 4 attempts \(ServiceUnavailableException: Slow down\.\)/,
    );
    await sink.close();
    expect(dead).toEqual([]);
    expect(server.calls.map((c) => c.data.length)).toEqual([10, 1, 1, 1]);
    expect(server.delivered).toEqual(records.filter((r) => r.value.n !== 3).map(lineOf));
  });

  it('dead-letters a record over 1,000 KiB (JSON and newline) without sending it; one of exactly 1,000 KiB is sent', async () => {
    const server = await firehose();
    const sink = firehoseSink({ deliveryStream: 'events', endpoint: server.url, ...fast });
    // {"id":"x","pad":"…"} and a newline: 20 bytes around the pad.
    const sized = (id: string, bytes: number) => ({ id, pad: 'z'.repeat(bytes - 20) });
    expect(Buffer.byteLength(`${JSON.stringify(sized('a', 1000))}\n`)).toBe(1000);
    const records = [
      recordOf({ id: 'before' }, 1),
      recordOf(sized('a', MAX_RECORD), 2),
      recordOf(sized('b', MAX_RECORD + 1), 3),
      recordOf({ id: 'after' }, 4),
    ];
    const { dead, context } = deadLetters();
    await sink.write(records, context);
    await sink.close();
    expect(dead.map((d) => [d.env.sequenceNumber, d.error])).toEqual([
      [
        '3',
        `firehose delivery stream events: RecordTooLarge: record of ${MAX_RECORD + 1} bytes is over Firehose's limit of 1,000 KiB (${MAX_RECORD} bytes)`,
      ],
    ]);
    expect(server.delivered).toEqual([records[0], records[1], records[3]].map((r) => lineOf(r as RecordEnvelope)));
  });

  it('dead-letters what it cannot encode (circular, nested too deeply) and sends the rest', async () => {
    const server = await firehose();
    const sink = firehoseSink({ deliveryStream: 'events', endpoint: server.url, ...fast });
    const { dead, context } = deadLetters();
    const batch = hostileBatch();
    await sink.write(batch, context);
    await sink.close();
    expectEncodeFailures(dead, 'firehose delivery stream events');
    expect(server.delivered).toEqual([batch[0], batch[2], batch[4]].map((r) => lineOf(r as RecordEnvelope)));
  });

  it('format json sends the JSON alone; idField adds the record id', async () => {
    const server = await firehose();
    const sink = firehoseSink({
      deliveryStream: 'events',
      endpoint: server.url,
      format: 'json',
      idField: 'rid',
      ...fast,
    });
    const records = recordsOf(3);
    await sink.write(records, deadLetters().context);
    await sink.close();
    expect(server.delivered).toEqual(
      records.map((r) => JSON.stringify({ ...r.value, rid: `shardId-000000000000/${r.sequenceNumber}` })),
    );
  });
});

describe('firehose sink in a YAML pipeline', () => {
  it('validates, runs end to end, and sends only actions its declared statement allows on its stream', async () => {
    const server = await firehose({ failEntry: (d, attempt) => d.includes('"n":4,') && attempt === 0 });
    const dir = mkdtempSync(join(tmpdir(), 'tributary-firehose-'));
    try {
      const input = Array.from({ length: 25 }, (_, n) => ({ n, user: `u${n % 4}` }));
      writeFileSync(join(dir, 'in.jsonl'), input.map((v) => `${JSON.stringify(v)}\n`).join(''));
      const yaml = [
        'version: 1',
        'name: to-firehose',
        'source: { file: { path: in.jsonl } }',
        'steps:',
        "  - filter: 'event.n % 2 == 0'",
        `  - sink: { firehose: { deliveryStream: clicks-out, endpoint: '${server.url}', retry: { minDelay: 1, maxDelay: 5 } } }`,
        '',
      ].join('\n');
      // `retry` is no option of the YAML kind: the validator says so, with the line.
      const refused = parsePipelineYaml(yaml, 'p.yaml');
      expect(refused.spec).toBeUndefined();
      expect(refused.issues.map((i) => [i.line, i.message])).toEqual([[6, expect.stringMatching(/retry/)]]);

      const parsed = parsePipelineYaml(yaml.replace(', retry: { minDelay: 1, maxDelay: 5 }', ''), 'p.yaml');
      expect(parsed.issues).toEqual([]);
      const spec = parsed.spec;
      if (!spec) throw new Error('no spec');
      const summary = await runPipeline(compile({ spec, bindings: new Map(), baseDir: dir }));
      const expected = input.filter((v) => v.n % 2 === 0);
      expect(summary).toMatchObject({ recordsIn: 25, recordsOut: expected.length, deadLettered: 0 });
      expect(server.delivered.map((d) => JSON.parse(d))).toEqual(
        // n = 4 was failed once and sent again after the rest of its call.
        [...expected.filter((v) => v.n !== 4), { n: 4, user: 'u0' }],
      );

      // The policy check: every call the run made is an action of the sink's own statement, on its stream.
      const statements = componentStatements(spec);
      expect(firehoseSinkDefinition.permissions?.({ deliveryStream: 'clicks-out' })).toEqual([
        { actions: ['firehose:PutRecordBatch'], resource: { type: 'firehose-delivery-stream', name: 'clicks-out' } },
      ]);
      const arn = {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation's Fn::Sub syntax
        'Fn::Sub': 'arn:${AWS::Partition}:firehose:${AWS::Region}:${AWS::AccountId}:deliverystream/clicks-out',
      };
      const actions = new Set(server.calls.map((c) => `firehose:${c.target.split('.')[1]}`));
      expect([...actions]).toEqual(['firehose:PutRecordBatch']);
      for (const action of actions) {
        expect(statements.filter((s) => s.Action.includes(action)).map((s) => s.Resource)).toEqual([[arn]]);
      }
      expect(new Set(server.calls.map((c) => c.stream))).toEqual(new Set(['clicks-out']));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
