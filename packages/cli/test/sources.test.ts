// Sources in the pipeline (issue 14): a pipeline whose source is a stream is refused by `run`
// at the line and column of its source, before anything is read, and runs unchanged on a file
// given with `--input`; `lambda-local` reads the stream and the event source mapping's settings
// from its `kinesis` source (endpoint from the source or the SDK's standard variables), refuses a
// `dynamodbStream` source it cannot simulate, and needs `--stream` only for a file source.
// In process (`main`), against kinesalite with 4 shards; every result checked against the input.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStream, kinesisClient, type Placed, putJson, startKinesalite } from '../../../test-support/emulators.js';
import { runMain } from './support/runMain.js';

type Click = { user: string; amount: number; kind: 'click' | 'view' };

const SHARDS = 4;
const events: Click[] = Array.from({ length: 333 }, (_, i) => ({
  user: `u${(i * 7) % 19}`,
  amount: (i * 11) % 41,
  kind: i % 4 === 0 ? 'view' : 'click',
}));

let kinesis: { endpoint: string; close: () => Promise<void> };
let dir: string;
let placed: Placed[];

beforeAll(async () => {
  kinesis = await startKinesalite();
  dir = await mkdtemp(join(tmpdir(), 'trib-sources-'));
  await writeFile(join(dir, 'events.jsonl'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
  const client = kinesisClient(kinesis.endpoint);
  await createStream(client, 'clicks', SHARDS);
  placed = await putJson(client, 'clicks', events, (e) => ({ partitionKey: e.user }));
  client.destroy();
});
afterAll(async () => {
  await kinesis?.close();
});

/** Runs the command line in process: its exit status and what it wrote. */
const tributary = runMain;

const lines = async (file: string) =>
  (await readFile(join(dir, file), 'utf8'))
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);

/** The oracle: the clicks, mapped as the pipelines map them, in a canonical order. */
const expectedOut = () =>
  events
    .filter((e) => e.kind === 'click')
    .map((e) => ({ user: e.user, cents: e.amount * 100 }))
    .sort((a, b) => a.user.localeCompare(b.user) || a.cents - b.cents);
const canonical = (vs: unknown[]) =>
  (vs as { user: string; cents: number }[]).sort((a, b) => a.user.localeCompare(b.user) || a.cents - b.cents);

/** A pipeline of `source` (its YAML, one line), writing to `out`; the source is on line 3. */
const pipelineYaml = (source: string, out: string) => `version: 1
name: sources
source: ${source}
steps:
  - filter: event.kind == "click"
  - map: { user: event.user, cents: event.amount * 100 }
  - sink: { file: { path: ${out} } }
`;

describe('tributary run on a pipeline whose source is a stream', () => {
  for (const [kind, source] of [
    ['kinesis', '{ kinesis: { stream: clicks } }'],
    ['dynamodbStream', '{ dynamodbStream: { table: users } }'],
  ] as const) {
    it(`refuses a ${kind} source at its line and column, exit 1, before reading or writing anything`, async () => {
      const file = join(dir, `run-${kind}.yaml`);
      await writeFile(file, pipelineYaml(source, `run-${kind}-out.jsonl`));
      const r = await tributary(['run', file]);
      expect(r.code).toBe(1);
      // Line 3; the column of the source's value (after `source: `).
      const column = 'source: '.length + 1;
      expect(r.err).toBe(
        `${file}:3:${column}: \`tributary run\` reads a file, not a ${kind} source: give \`--input <file>\` (JSON Lines) to run it on a file; ${kind === 'kinesis' ? 'or run it on the stream with `tributary lambda-local`' : 'the stream itself is read by the deployed function'}\n`,
      );
      expect(r.err).not.toContain('internal error');
      expect(existsSync(join(dir, `run-${kind}-out.jsonl`))).toBe(false);
    });

    it(`--input puts a file in place of a ${kind} source (with --batch-size); the output equals the oracle`, async () => {
      const file = join(dir, `input-${kind}.yaml`);
      await writeFile(file, pipelineYaml(source, `input-${kind}-out.jsonl`));
      const r = await tributary(['run', file, '--input', join(dir, 'events.jsonl'), '--batch-size', '17']);
      expect(r.err).toContain(`sources: ${events.length} records in, ${expectedOut().length} written`);
      expect(r.code).toBe(0);
      expect(canonical(await lines(`input-${kind}-out.jsonl`))).toEqual(expectedOut());
      // describe shows the file source with that batch size in the stream's place.
      const d = await tributary(['describe', file, '--input', join(dir, 'events.jsonl'), '--batch-size', '17']);
      expect(d.code).toBe(0);
      expect(d.out).toContain('events.jsonl');
      expect(d.out).not.toContain(kind === 'kinesis' ? 'clicks from' : 'users from');
    });
  }

  it('--batch-size without --input on a stream source is a usage error naming the source kind', async () => {
    const file = join(dir, 'bs.yaml');
    await writeFile(file, pipelineYaml('{ kinesis: { stream: clicks } }', 'bs-out.jsonl'));
    const r = await tributary(['run', file, '--batch-size', '5']);
    expect(r.code).toBe(64);
    expect(r.err).toContain(
      '--batch-size applies to a file source: the source is kinesis; give --input <file> with it',
    );
    expect(existsSync(join(dir, 'bs-out.jsonl'))).toBe(false);
  });
});

/** Invocations the simulator makes when each shard's records are cut into batches of `n`. */
function invocationsFor(n: number): number {
  const perShard = new Map<string, number>();
  for (const p of placed) perShard.set(p.shardId, (perShard.get(p.shardId) ?? 0) + 1);
  expect(perShard.size).toBe(SHARDS);
  return [...perShard.values()].reduce((sum, c) => sum + Math.ceil(c / n), 0);
}

describe('tributary lambda-local reads the pipeline source', () => {
  it('the stream, endpoint and batch size of the kinesis source: no --stream needed; output equals the oracle', async () => {
    const file = join(dir, 'll-source.yaml');
    await writeFile(
      file,
      pipelineYaml(
        `{ kinesis: { stream: clicks, endpoint: '${kinesis.endpoint}', batchSize: 40 } }`,
        'll-source.jsonl',
      ),
    );
    const r = await tributary(['lambda-local', file]);
    expect(r.code).toBe(0);
    // Batches of the source's 40 records (each shard's records, cut in 40s).
    expect(r.err).toContain(
      `sources: ${invocationsFor(40)} invocations, ${events.length} records in (each once, retries not counted), ${expectedOut().length} written, 0 dead-lettered, 0 sent to the on-failure destination\n`,
    );
    expect(canonical(await lines('ll-source.jsonl'))).toEqual(expectedOut());
  });

  it('the flags override the source: --batch-size, and --stream names another stream', async () => {
    const client = kinesisClient(kinesis.endpoint);
    await createStream(client, 'other', 2);
    const few = events.slice(0, 25);
    await putJson(client, 'other', few, (e) => ({ partitionKey: e.user }));
    client.destroy();
    const file = join(dir, 'll-flags.yaml');
    await writeFile(
      file,
      pipelineYaml(`{ kinesis: { stream: clicks, endpoint: '${kinesis.endpoint}', batchSize: 40 } }`, 'll-flags.jsonl'),
    );
    const r = await tributary(['lambda-local', file, '--batch-size', '25']);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`sources: ${invocationsFor(25)} invocations, ${events.length} records in`);
    const o = await tributary(['lambda-local', file, '--stream', 'other']);
    expect(o.code).toBe(0);
    expect(o.err).toContain(`${few.length} records in`);
    expect(canonical(await lines('ll-flags.jsonl'))).toEqual(
      canonical(few.filter((e) => e.kind === 'click').map((e) => ({ user: e.user, cents: e.amount * 100 }))),
    );
  });

  it('a kinesis source by streamArn: the stream its ARN names', async () => {
    const file = join(dir, 'll-arn.yaml');
    await writeFile(
      file,
      pipelineYaml(
        `{ kinesis: { streamArn: 'arn:aws:kinesis:eu-west-1:123456789012:stream/clicks', endpoint: '${kinesis.endpoint}' } }`,
        'll-arn.jsonl',
      ),
    );
    const r = await tributary(['lambda-local', file]);
    expect(r.err).toContain(`${events.length} records in`);
    expect(r.code).toBe(0);
    expect(canonical(await lines('ll-arn.jsonl'))).toEqual(expectedOut());
  });

  it('the endpoint from AWS_ENDPOINT_URL_KINESIS when neither the flag nor the source names one (local credentials)', async () => {
    const file = join(dir, 'll-env.yaml');
    await writeFile(file, pipelineYaml('{ kinesis: { stream: clicks } }', 'll-env.jsonl'));
    const saved = { ...process.env };
    try {
      process.env.AWS_ENDPOINT_URL_KINESIS = kinesis.endpoint;
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
      delete process.env.AWS_PROFILE;
      const r = await tributary(['lambda-local', file]);
      expect(r.err).toContain(`${events.length} records in`);
      expect(r.code).toBe(0);
    } finally {
      process.env = saved;
    }
    expect(canonical(await lines('ll-env.jsonl'))).toEqual(expectedOut());
  });

  it('a dynamodbStream source is refused at its line and column (exit 1): lambda-local simulates Kinesis only', async () => {
    const file = join(dir, 'll-ddb.yaml');
    await writeFile(file, pipelineYaml('{ dynamodbStream: { table: users } }', 'll-ddb.jsonl'));
    const r = await tributary(['lambda-local', file, '--endpoint', kinesis.endpoint]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `${file}:3:${'source: '.length + 1}: lambda-local reads Kinesis streams only: a dynamodbStream source is not simulated; run the pipeline on change records in a file with \`tributary run --input <file>\`\n`,
    );
    expect(existsSync(join(dir, 'll-ddb.jsonl'))).toBe(false);
  });

  it('a file source needs --stream (usage error, exit 64)', async () => {
    const file = join(dir, 'll-file.yaml');
    await writeFile(file, pipelineYaml('{ file: { path: events.jsonl } }', 'll-file.jsonl'));
    const r = await tributary(['lambda-local', file, '--endpoint', kinesis.endpoint]);
    expect(r.code).toBe(64);
    expect(r.err).toContain(
      `lambda-local needs --stream <name>: the source of ${file} is a file, not a kinesis stream`,
    );
  });
});
