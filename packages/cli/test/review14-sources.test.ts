// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` in plain strings is the syntax under test
// Review of issue 14's sources, env files and lambda-local, as a user adopting Tributary would
// try them: each test is a problem found (a pipeline Lambda would refuse that validate accepted,
// an env file whose first variable was lost, an SDK call that could hang forever), fixed, with
// the error checked at its file, line and column.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListShardsCommand } from '@aws-sdk/client-kinesis';
import { kinesisClient } from '@tributary/aws/kinesis';
import { LambdaSimulator } from '@tributary/runtime-lambda';
import type { KinesisStreamEvent } from 'aws-lambda';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createStream, putJson, startKinesalite } from '../../../test-support/emulators.js';
import { runMain } from './support/runMain.js';

/** Runs the command line in process: its exit status and what it wrote. */
const tributary = runMain;

// `main` puts the env files' variables into process.env: each test gets its own back.
const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-review14-'));
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
});

/** The 1-based `line:column` of the first `needle` in `text`. */
function at(text: string, needle: string): string {
  const i = text.indexOf(needle);
  if (i === -1) throw new Error(`${needle} not in text`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${(before.at(-1) as string).length + 1}`;
}

/** A pipeline whose source is `kind` with `options` (block style, one per line). */
const streamPipeline = (kind: string, options: Record<string, string>) => `version: 1
name: review
source:
  ${kind}:
${Object.entries(options)
  .map(([k, v]) => `    ${k}: ${v}\n`)
  .join('')}steps:
  - sink: { file: { path: out.jsonl } }
`;

describe("source options Lambda's event source mapping refuses are refused by validate, at their value", () => {
  // Lambda's limits (CreateEventSourceMapping): MaximumBatchingWindowInSeconds 0-300 whole
  // seconds, MaximumRecordAgeInSeconds 60-604800, StartingPositionTimestamp not in the future.
  const refused: [string, string, Record<string, string>, string, string][] = [
    [
      'batchingWindow 301s',
      'kinesis',
      { stream: 'clicks', batchingWindow: '301s' },
      '301s',
      "expected a duration of whole seconds from 0s to 300s (Lambda's MaximumBatchingWindowInSeconds), got 301s",
    ],
    [
      'batchingWindow 500ms (Lambda takes whole seconds)',
      'kinesis',
      { stream: 'clicks', batchingWindow: '500ms' },
      '500ms',
      "expected a duration of whole seconds from 0s to 300s (Lambda's MaximumBatchingWindowInSeconds), got 500ms",
    ],
    [
      'batchingWindow as 301000 ms',
      'dynamodbStream',
      { table: 'users', batchingWindow: '301000' },
      '301000',
      "expected a duration of whole seconds from 0s to 300s (Lambda's MaximumBatchingWindowInSeconds), got 301000 (ms)",
    ],
    [
      'maxRecordAge 30s',
      'kinesis',
      { stream: 'clicks', maxRecordAge: '30s' },
      '30s',
      "expected a duration of whole seconds from 60s to 7d (Lambda's MaximumRecordAgeInSeconds), got 30s",
    ],
    [
      'maxRecordAge 8d',
      'dynamodbStream',
      { table: 'users', maxRecordAge: '8d' },
      '8d',
      "expected a duration of whole seconds from 60s to 7d (Lambda's MaximumRecordAgeInSeconds), got 8d",
    ],
    [
      'startingTimestamp in the future',
      'kinesis',
      { stream: 'clicks', startingPosition: 'AT_TIMESTAMP', startingTimestamp: '"2999-01-01T00:00:00Z"' },
      '"2999',
      'expected a time that is not in the future (Lambda refuses a StartingPositionTimestamp after now), got 2999-01-01T00:00:00Z',
    ],
    [
      'startingTimestamp on a day that does not exist',
      'kinesis',
      { stream: 'clicks', startingPosition: 'AT_TIMESTAMP', startingTimestamp: '"2026-02-30T00:00:00Z"' },
      '"2026',
      'expected a time that exists (month 01-12, a day of that month, 00:00-23:59:59), got 2026-02-30T00:00:00Z',
    ],
    [
      'startingTimestamp of month 13',
      'kinesis',
      { stream: 'clicks', startingPosition: 'AT_TIMESTAMP', startingTimestamp: '"2026-13-01T00:00:00Z"' },
      '"2026',
      'expected a time that exists (month 01-12, a day of that month, 00:00-23:59:59), got 2026-13-01T00:00:00Z',
    ],
    [
      'a streamArn of no partition (awsfoo)',
      'kinesis',
      { streamArn: 'arn:awsfoo:kinesis:us-east-1:123456789012:stream/clicks' },
      'arn:',
      'expected stream ARN (instead of `stream`), got "arn:awsfoo:kinesis:us-east-1:123456789012:stream/clicks"',
    ],
  ];
  for (const [what, kind, options, valueStart, message] of refused) {
    it(`${what}: exit 1, the message at the value's line and column`, async () => {
      const text = streamPipeline(kind, options);
      const file = join(dir, `refused-${what.replace(/\W+/g, '-')}.yaml`);
      await writeFile(file, text);
      const r = await tributary(['validate', file]);
      expect(r.code).toBe(1);
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${file}:${at(text, valueStart)}: ${message}`);
    });
  }

  // The edges Lambda accepts, and the other partitions' ARNs.
  const accepted: [string, string, Record<string, string>][] = [
    ['batchingWindow 300s', 'kinesis', { stream: 'clicks', batchingWindow: '300s' }],
    ['batchingWindow 0', 'dynamodbStream', { table: 'users', batchingWindow: '0' }],
    ['maxRecordAge 60s', 'kinesis', { stream: 'clicks', maxRecordAge: '60s' }],
    ['maxRecordAge 7d', 'dynamodbStream', { table: 'users', maxRecordAge: '7d' }],
    ['maxRecordAge 604800000 ms', 'kinesis', { stream: 'clicks', maxRecordAge: '604800000' }],
    [
      'parallelization with a dynamodbStream (Lambda takes it)',
      'dynamodbStream',
      { table: 'users', parallelization: '10' },
    ],
    [
      'a past startingTimestamp with an offset',
      'kinesis',
      { stream: 'clicks', startingPosition: 'AT_TIMESTAMP', startingTimestamp: '"2024-02-29T23:59:59.5+05:30"' },
    ],
    ['an aws-cn stream ARN', 'kinesis', { streamArn: 'arn:aws-cn:kinesis:cn-north-1:123456789012:stream/clicks' }],
    [
      'an aws-us-gov table stream ARN',
      'dynamodbStream',
      { streamArn: 'arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/users/stream/2026-01-01T00:00:00.000' },
    ],
  ];
  for (const [what, kind, options] of accepted) {
    it(`${what}: accepted`, async () => {
      const file = join(dir, `accepted-${what.replace(/\W+/g, '-')}.yaml`);
      await writeFile(file, streamPipeline(kind, options));
      const r = await tributary(['validate', file]);
      expect(r.out + r.err).toBe(`${file}: ok\n`);
      expect(r.code).toBe(0);
    });
  }
});

describe('an endpoint that accepts connections and never answers', () => {
  it('fails the SDK call with a TimeoutError after the request timeout, instead of holding it forever', async () => {
    // A TCP server that accepts and reads, and never writes a byte back.
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = kinesisClient({ endpoint: `http://127.0.0.1:${port}`, requestTimeout: 300, maxAttempts: 1 });
    try {
      const outcome = await Promise.race([
        client.send(new ListShardsCommand({ StreamName: 'clicks' })).then(
          () => 'answered',
          (err: Error) => err,
        ),
        // Far longer than the timeout: reaching it means the call hangs (as it did).
        new Promise((resolve) => setTimeout(() => resolve('still waiting'), 20_000)),
      ]);
      expect(outcome).toBeInstanceOf(Error);
      expect((outcome as Error).name).toBe('TimeoutError');
      expect(sockets.size).toBeGreaterThan(0);
    } finally {
      client.destroy();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 30_000);
});

describe('env files as editors and shells write them', () => {
  /** A pipeline whose name and file output come from ${NAME} and ${OUT}. */
  const pipeline = `version: 1
name: \${NAME}
source: { file: { path: in.jsonl } }
steps:
  - map:
      tag: '"\${TAG}"'
  - sink:
      file:
        path: \${OUT}
`;
  const input = [{ a: 1 }, { a: 2 }, { a: 3 }];
  const cases: [string, string, { name: string; tag: string }][] = [
    ['a byte order mark', '\uFEFFNAME=bom\nOUT=bom.jsonl\nTAG=x\n', { name: 'bom', tag: 'x' }],
    ['CRLF line ends', 'NAME=crlf\r\nOUT=crlf.jsonl\r\nTAG=y\r\n', { name: 'crlf', tag: 'y' }],
    ['a BOM and CRLF', '\uFEFFNAME=both\r\nOUT=both.jsonl\r\nTAG=z\r\n', { name: 'both', tag: 'z' }],
    ['export prefixes', 'export NAME=exp\nexport OUT=exp.jsonl\nTAG=w\n', { name: 'exp', tag: 'w' }],
    [
      'quoted values with YAML characters and unicode',
      'NAME="q"\nOUT=\'q.jsonl\'\nTAG="a: b # c {d} Zürich 😀"\n',
      { name: 'q', tag: 'a: b # c {d} Zürich 😀' },
    ],
    ['a value holding ${', 'NAME=lit\nOUT=lit.jsonl\nTAG="${NOT_A_REF}"\n', { name: 'lit', tag: '${NOT_A_REF}' }],
  ];
  for (const [what, envText, expected] of cases) {
    it(`${what}: every variable is read (run, then its output checked against the input)`, async () => {
      const sub = await mkdtemp(join(dir, 'env-'));
      await writeFile(join(sub, 'in.jsonl'), `${input.map((e) => JSON.stringify(e)).join('\n')}\n`);
      await writeFile(join(sub, 'p.yaml'), pipeline);
      await writeFile(join(sub, 'vars.env'), envText);
      const r = await tributary(['run', join(sub, 'p.yaml'), '--env-file', join(sub, 'vars.env')]);
      expect(r.err).toContain(`${expected.name}: ${input.length} records in, ${input.length} written`);
      expect(r.code).toBe(0);
      const out = (await readFile(join(sub, `${expected.name}.jsonl`), 'utf8')).trim().split('\n');
      expect(out.map((l) => JSON.parse(l))).toEqual(input.map(() => ({ tag: expected.tag })));
    });
  }
});

describe("the local event source's poll bound", () => {
  it('a shard not drained within maxPolls rejects runUntilIdle (naming the shard) instead of passing for drained; unbounded, every record is handled once', async () => {
    const kinesis = await startKinesalite();
    const client = kinesisClient({ endpoint: kinesis.endpoint });
    try {
      await createStream(client, 'bounded', 4);
      const events = Array.from({ length: 120 }, (_, i) => ({ i }));
      const placed = await putJson(client, 'bounded', events, (e) => ({ partitionKey: `k${e.i}` }));
      const perShard = new Map<string, number>();
      for (const p of placed) perShard.set(p.shardId, (perShard.get(p.shardId) ?? 0) + 1);
      expect(perShard.size).toBe(4);
      const handled: number[] = [];
      const handler = async (event: KinesisStreamEvent) => {
        for (const r of event.Records)
          handled.push((JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString()) as { i: number }).i);
        return { batchItemFailures: [] };
      };
      const mapping = { batchSize: 1, maximumBatchingWindowInSeconds: 0 };
      // 5 polls of batches of 1: no shard (each has more than 5 records) is drained by then.
      expect(Math.min(...perShard.values())).toBeGreaterThan(5);
      const bounded = new LambdaSimulator(handler, { client, stream: 'bounded', mapping, pollIntervalMs: 1 });
      await expect(bounded.runUntilIdle({ maxPolls: 5 })).rejects.toThrow(
        /^shard shardId-\d+ of stream bounded was not drained within 5 polls/,
      );
      // Unbounded (as lambda-local runs it): every record once, whatever the bound would have been.
      handled.length = 0;
      const unbounded = new LambdaSimulator(handler, { client, stream: 'bounded', mapping, pollIntervalMs: 1 });
      await unbounded.runUntilIdle({ maxPolls: Number.POSITIVE_INFINITY });
      expect(handled.sort((a, b) => a - b)).toEqual(events.map((e) => e.i));
    } finally {
      client.destroy();
      await kinesis.close();
    }
  }, 60_000);
});

describe('lambda-local --timestamp', () => {
  for (const bad of [
    '2026-02-30T00:00:00Z',
    '2026-01-01T24:00:00Z',
    '2026-04-31T12:00+02:00',
    '2026-13-01T00:00:00Z',
  ]) {
    it(`${bad}, a time that does not exist, is a usage error (Date.parse rolled it over to another day)`, async () => {
      const r = await tributary([
        'lambda-local',
        join(dir, 'never-read.yaml'),
        '--from',
        'at-timestamp',
        '--timestamp',
        bad,
      ]);
      expect(r.code).toBe(64);
      expect(r.err.split('\n')[0]).toBe(
        `Expected \`--timestamp\` to be an ISO 8601 time that exists, such as 2026-12-02T14:00:00Z, got ${bad}`,
      );
    });
  }
  for (const good of ['2024-02-29T23:59:59.250+05:30', '2026-12-31T23:59Z', '2025-06-30T00:00:00-09:30']) {
    it(`${good} is taken (the run goes on to read the pipeline file, which is missing: exit 1)`, async () => {
      const file = join(dir, 'missing-pipeline.yaml');
      const r = await tributary(['lambda-local', file, '--from', 'at-timestamp', '--timestamp', good]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(file);
      expect(r.err).not.toContain('--timestamp');
    });
  }
});

describe('lambda-local on a source with consumer: efo', () => {
  it('says once that it reads with GetRecords, and handles every record of 4 shards once', async () => {
    const kinesis = await startKinesalite();
    const client = kinesisClient({ endpoint: kinesis.endpoint });
    try {
      await createStream(client, 'fanout', 4);
      const events = Array.from({ length: 61 }, (_, i) => ({ i, user: `u${i % 7}` }));
      const placed = await putJson(client, 'fanout', events, (e) => ({ partitionKey: `${e.user}-${e.i}` }));
      expect(new Set(placed.map((p) => p.shardId)).size).toBe(4);
      const sub = await mkdtemp(join(dir, 'efo-'));
      const file = join(sub, 'efo.yaml');
      await writeFile(
        file,
        `version: 1\nname: efo\nsource:\n  kinesis: { stream: fanout, consumer: efo, endpoint: "${kinesis.endpoint}" }\nsteps:\n  - sink: { file: { path: out.jsonl } }\ndeadLetter: { file: { path: dl.jsonl } }\n`,
      );
      const r = await tributary(['lambda-local', file]);
      expect(r.code, r.err).toBe(0);
      const notes = r.err.split('\n').filter((l) => l.includes('note:'));
      expect(notes).toEqual([
        `${file}: note: the source's \`consumer: efo\` is read with GetRecords here (the deployed mapping reads through its registered consumer, SubscribeToShard)`,
      ]);
      expect(r.err).toContain(`${events.length} records in (each once, retries not counted), ${events.length} written`);
      const out = (await readFile(join(sub, 'out.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { i: number });
      expect(out.map((e) => e.i).sort((a, b) => a - b)).toEqual(events.map((e) => e.i));
    } finally {
      client.destroy();
      await kinesis.close();
    }
  }, 60_000);
});

describe('every command that loads a pipeline applies --env-file', () => {
  const text = `version: 1
name: \${PIPELINE_NAME}
source:
  kinesis:
    stream: clicks
    endpoint: http://127.0.0.1:1
steps:
  - sink: { stdout: {} }
`;
  const commands: [string, (file: string) => string[]][] = [
    ['validate', (f) => ['validate', f]],
    ['describe', (f) => ['describe', f]],
    ['run', (f) => ['run', f, '--input', join(dir, 'env-all.jsonl')]],
    ['state init', (f) => ['state', 'init', f]],
    ['synth', (f) => ['synth', f, '--runtime', 'lambda', '--out', join(dir, 'env-all-out'), '--allow-local']],
    ['lambda-local', (f) => ['lambda-local', f]],
  ];
  for (const [name, args] of commands) {
    it(`${name}: without the file the reference is unset at its line and column; with it, it is not`, async () => {
      const file = join(dir, 'env-all.yaml');
      await writeFile(file, text);
      await writeFile(join(dir, 'env-all.jsonl'), '{"a":1}\n');
      await writeFile(join(dir, 'env-all.env'), 'PIPELINE_NAME=from-env-file\n');
      delete process.env.PIPELINE_NAME;
      const without = await tributary(args(file));
      expect(without.code).toBe(1);
      expect(without.err).toContain(`${file}:2:7: \${PIPELINE_NAME} is not set`);
      const withFile = await tributary(['--env-file', join(dir, 'env-all.env'), ...args(file)]);
      expect(withFile.err).not.toContain('is not set');
      expect(withFile.code).not.toBe(70);
      // Where the command prints the pipeline's name, it is the env file's.
      if (name === 'describe') expect(withFile.out).toContain('pipeline from-env-file');
      if (name === 'run') expect(withFile.err).toContain('from-env-file: 1 records in');
    });
  }
});
