// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` in plain strings is the pipeline syntax under test
// `synth` refuses settings that only work on this machine (loopback endpoints and URLs, file
// outputs), each at its line and column, and writes nothing; `--allow-local` makes them warnings.
// And the issue's proof: one pipeline file with `${NAME}` references runs locally with one env
// file (checked against the input) and synthesises for an account with another, unchanged.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { main } from '@tributary/cli';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createStream,
  createTable,
  dynamoDbClient,
  kinesisClient,
  startDynalite,
  startKinesalite,
  streamData,
  useServers,
} from '../../../test-support/emulators.js';

const servers = useServers(async () => {
  const [dynamo, kinesis] = await Promise.all([startDynalite(), startKinesalite()]);
  return { dynamo, kinesis, close: async () => void (await Promise.all([dynamo.close(), kinesis.close()])) };
});

/**
 * Runs a command in process and returns its exit status and output. `main` puts the env files'
 * variables into process.env; the environment is put back after each command, as each would be
 * a process of its own.
 */
async function tributary(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = {
    out: {
      write: (s: string) => {
        out += s;
        return true;
      },
    },
    err: {
      write: (s: string) => {
        err += s;
        return true;
      },
    },
  } as never as Parameters<typeof main>[1];
  const saved = { ...process.env };
  try {
    return { code: await main(args, io), out, err };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

/** The 1-based line:column of the `nth` occurrence of `needle` in `text` (computed, not copied). */
function at(text: string, needle: string, nth = 0): string {
  let i = -1;
  for (let k = 0; k <= nth; k++) i = text.indexOf(needle, i + 1);
  if (i === -1) throw new Error(`${needle} not in text`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${(before.at(-1) as string).length + 1}`;
}

const unreachable = (what: string, field: string, value: string) =>
  `${what}: ${field} ${value} is on this machine (a loopback address), which a Lambda function cannot reach: ${
    field === 'endpoint'
      ? 'leave `endpoint` out for the AWS one (point local runs at emulators with AWS_ENDPOINT_URL_<SERVICE>), or give it per environment'
      : 'give the deployed one'
  } with \${NAME} and --env-file`;
const writesFile = (what: string) =>
  `${what} writes a file, which a Lambda function cannot (its package folder is read-only): use stdout/stderr (CloudWatch Logs) or an AWS sink (s3, sqs, kinesis, dynamodb)`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-synth-local-'));
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
});

describe('synth and local settings', () => {
  // Every kind of local setting, each in a different place; and settings that are fine (a file
  // source, stdout, an endpoint that is not on this machine, a Redis node elsewhere).
  const local = `version: 1
name: local-everything
source: { kinesis: { stream: clicks, endpoint: "http://127.0.0.1:4567" } }
steps:
  - enrich:
      lookup: { dynamodb: { table: users, key: { id: event.user }, endpoint: "http://[::1]:8000" } }
      as: profile
      onMissing: keep
  - branch:
      routes:
        - when: event.n > 1
          steps:
            - sink: { kinesis: { stream: big, partitionKey: event.user, endpoint: "http://localhost:4567" } }
            - sink: { file: { path: big.jsonl } }
  - sink: { http: { url: "http://127.0.0.2:8080/hook" } }
  - sink: { redis: { url: "redis://localhost:6379", command: set, key: event.user } }
  - sink: { redis: { url: "redis://", command: set, key: event.user } }
  - sink: { s3: { bucket: archive, endpoint: "https://s3.eu-west-1.amazonaws.com" } }
  - sink: { stdout: {} }
  - window:
      key: event.user
      tumbling: 1m
      aggregate: { n: count() }
      state: { redis: { cluster: ["127.0.0.1:7000", "cache.internal:7001"] } }
      late: { sink: { file: { path: late.jsonl } } }
  - window:
      key: event.user
      tumbling: 1m
      aggregate: { n: count() }
      state: { dynamodb: { table: state, endpoint: "http://0.0.0.0:8000" } }
deadLetter: { file: { path: dead.jsonl } }
`;

  it('refuses each at its line and column (exit 1) and writes nothing', async () => {
    const file = join(dir, 'local.yaml');
    await writeFile(file, local);
    // The pipeline is valid: only synth refuses it.
    const valid = await tributary(['validate', file]);
    expect(valid.err).toBe(`${file}: ok\n`);
    const out = join(dir, 'dist-local');
    const r = await tributary(['synth', file, '--runtime', 'lambda', '--out', out]);
    const expected = [
      `${at(local, '"http://127.0.0.1:4567"')}: ${unreachable('source `kinesis`', 'endpoint', 'http://127.0.0.1:4567')}`,
      `${at(local, '"http://[::1]:8000"')}: ${unreachable('lookup `dynamodb`', 'endpoint', 'http://[::1]:8000')}`,
      `${at(local, '"http://localhost:4567"')}: ${unreachable('sink `kinesis`', 'endpoint', 'http://localhost:4567')}`,
      `${at(local, '{ path: big.jsonl }')}: ${writesFile('sink `file`')}`,
      `${at(local, '"http://127.0.0.2:8080/hook"')}: ${unreachable('sink `http`', 'url', 'http://127.0.0.2:8080/hook')}`,
      `${at(local, '"redis://localhost:6379"')}: ${unreachable('sink `redis`', 'url', 'redis://localhost:6379')}`,
      `${at(local, '"redis://"')}: ${unreachable('sink `redis`', 'url', 'redis://')}`,
      `${at(local, '"127.0.0.1:7000"')}: store \`redis\`: cluster node 127.0.0.1:7000 is on this machine (a loopback address), which a Lambda function cannot reach`,
      `${at(local, '{ path: late.jsonl }')}: ${writesFile('late output `file`')}`,
      `${at(local, '"http://0.0.0.0:8000"')}: ${unreachable('store `dynamodb`', 'endpoint', 'http://0.0.0.0:8000')}`,
      `${at(local, '{ path: dead.jsonl }')}: ${writesFile('dead-letter output `file`')}`,
    ];
    expect(r.err.trim().split('\n')).toEqual([
      ...expected.map((line) => `${file}:${line}`),
      `${file}: not synthesised: ${expected.length} local settings (give --allow-local to synthesise anyway)`,
    ]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(existsSync(out)).toBe(false);
  });

  it('with --allow-local prints them as warnings and synthesises', async () => {
    const text = `version: 1
name: local-allowed
source: { file: { path: in.jsonl } }
steps:
  - sink: { kinesis: { stream: out, partitionKey: event.user, endpoint: "http://127.0.0.1:4567" } }
deadLetter: { file: { path: dead.jsonl } }
`;
    const file = join(dir, 'allowed.yaml');
    await writeFile(file, text);
    const out = join(dir, 'dist-allowed');
    const r = await tributary(['synth', file, '--runtime', 'lambda', '--out', out, '--allow-local']);
    expect(r.err.trim().split('\n')).toEqual([
      `warning: ${file}:${at(text, '"http://127.0.0.1')}: ${unreachable('sink `kinesis`', 'endpoint', 'http://127.0.0.1:4567')}`,
      `warning: ${file}:${at(text, '{ path: dead.jsonl }')}: ${writesFile('dead-letter output `file`')}`,
    ]);
    expect(r.code).toBe(0);
    expect(existsSync(join(out, 'index.mjs'))).toBe(true);
    expect(existsSync(join(out, 'template.json'))).toBe(true);
  });

  it('finds nothing in a pipeline without local settings (a file source is fine)', async () => {
    const text = `version: 1
name: deployable
source: { file: { path: in.jsonl } }
steps:
  - sink: { kinesis: { stream: out, partitionKey: event.user } }
  - sink: { stdout: {} }
deadLetter: { stderr: {} }
`;
    const file = join(dir, 'deployable.yaml');
    await writeFile(file, text);
    const r = await tributary(['synth', file, '--runtime', 'lambda', '--out', join(dir, 'dist-deployable')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('one pipeline, many environments (the proof)', () => {
  const pipeline = `version: 1
name: usage-\${STAGE}
source:
  file:
    path: \${INPUT:-usage.jsonl}
steps:
  - filter: event.kind == "\${KIND:-call}"
  - sink:
      dynamodb:
        table: \${USAGE_TABLE}
  - sink:
      kinesis:
        stream: \${OUT_STREAM}
        partitionKey: event.customer
        endpoint: \${KINESIS_ENDPOINT}
`;
  const events = Array.from({ length: 300 }, (_, i) => ({
    id: `e${String(i).padStart(3, '0')}`,
    customer: `c${(i * 7) % 13}`,
    kind: i % 4 === 1 ? 'sms' : 'call',
    units: (i * 11) % 19,
  }));

  it('runs locally with one env file, synthesises for an account with another, and is refused for Lambda with the local one', async () => {
    const file = join(dir, 'usage.yaml');
    await writeFile(file, pipeline);
    await writeFile(join(dir, 'usage.jsonl'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const localEnv = join(dir, 'local.env');
    await writeFile(
      localEnv,
      [
        'STAGE=local',
        'USAGE_TABLE=usage-local',
        'OUT_STREAM=usage-local-out',
        `KINESIS_ENDPOINT=${servers.kinesis.endpoint}`,
        // No endpoint in the file for DynamoDB: the SDK's own variable points it at dynalite.
        `AWS_ENDPOINT_URL_DYNAMODB=${servers.dynamo.endpoint}`,
        '',
      ].join('\n'),
    );
    const prodEnv = join(dir, 'prod.env');
    await writeFile(
      prodEnv,
      'STAGE=prod\nUSAGE_TABLE=usage-prod\nOUT_STREAM=usage-prod-out\nKINESIS_ENDPOINT=https://kinesis.eu-west-1.amazonaws.com\n',
    );
    const pristine = await readFile(file, 'utf8');

    // Locally: the run writes the input's calls to dynalite and kinesalite.
    const dynamo = dynamoDbClient(servers.dynamo.endpoint);
    const kinesis = kinesisClient(servers.kinesis.endpoint);
    await createTable(dynamo, 'usage-local');
    await createStream(kinesis, 'usage-local-out', 4);
    for (const k of ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_REGION']) delete process.env[k];
    const run = await tributary(['run', file, '--env-file', localEnv, '--quiet']);
    expect(run.err).not.toMatch(/error|fail/i);
    expect(run.code).toBe(0);
    const calls = events.filter((e) => e.kind === 'call');
    const items: unknown[] = [];
    let start: Record<string, never> | undefined;
    do {
      const page = await dynamo.send(new ScanCommand({ TableName: 'usage-local', ExclusiveStartKey: start }));
      items.push(...(page.Items ?? []).map((i) => unmarshall(i)));
      start = page.LastEvaluatedKey as never;
    } while (start);
    const byId = (a: unknown, b: unknown) => (a as { id: string }).id.localeCompare((b as { id: string }).id);
    expect(items.sort(byId)).toEqual([...calls].sort(byId));
    const streamed = (await streamData(kinesis, 'usage-local-out')).map((d) => JSON.parse(d));
    expect(streamed.sort(byId)).toEqual([...calls].sort(byId));
    dynamo.destroy();
    kinesis.destroy();

    // For the account: the same file, the other env file; its values are in the bundle and template, no local one.
    const prodOut = join(dir, 'dist-prod');
    const prod = await tributary(['synth', file, '--runtime', 'lambda', '--out', prodOut, '--env-file', prodEnv]);
    expect(prod.err).toBe('');
    expect(prod.code).toBe(0);
    const bundle = await readFile(join(prodOut, 'index.mjs'), 'utf8');
    const template = await readFile(join(prodOut, 'template.json'), 'utf8');
    for (const value of ['usage-prod', 'usage-prod-out', 'https://kinesis.eu-west-1.amazonaws.com'])
      expect(bundle).toContain(value);
    expect(JSON.parse(template).Description).toContain('usage-prod');
    // The role's statements name the account's table and stream (derived from the components).
    expect(template).toContain(':table/usage-prod"');
    expect(template).toContain(':stream/usage-prod-out"');
    for (const text of [bundle, template]) {
      expect(text).not.toContain(servers.kinesis.endpoint);
      expect(text).not.toContain(servers.dynamo.endpoint);
      expect(text).not.toContain('usage-local');
    }

    // For Lambda with the local env file: refused at the reference, and accepted with --allow-local.
    const localOut = join(dir, 'dist-local-env');
    const refused = await tributary(['synth', file, '--runtime', 'lambda', '--out', localOut, '--env-file', localEnv]);
    const warning = `${file}:${at(pipeline, '${KINESIS_ENDPOINT}')}: ${unreachable('sink `kinesis`', 'endpoint', servers.kinesis.endpoint)}`;
    expect(refused.err).toBe(
      `${warning}\n${file}: not synthesised: 1 local setting (give --allow-local to synthesise anyway)\n`,
    );
    expect(refused.code).toBe(1);
    expect(existsSync(localOut)).toBe(false);
    const allowed = await tributary([
      'synth',
      file,
      '--runtime',
      'lambda',
      '--out',
      localOut,
      '--env-file',
      localEnv,
      '--allow-local',
    ]);
    expect(allowed.err).toBe(`warning: ${warning}\n`);
    expect(allowed.code).toBe(0);
    expect(await readFile(join(localOut, 'index.mjs'), 'utf8')).toContain(servers.kinesis.endpoint);
    // The pipeline file was never changed.
    expect(await readFile(file, 'utf8')).toBe(pristine);
  });
});
