// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` in plain strings is the syntax under test
// `--env-file` and the standard AWS SDK variables: one pipeline file, its `${NAME}` references
// filled from the environment and env files (a later file wins), run against the emulators with
// no endpoint in the file (AWS_ENDPOINT_URL_DYNAMODB points the SDK at dynalite), checked against
// the input.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { awsClientConfig, environmentEndpoint, isLoopbackHost } from '@tributary/aws';
import { dynamoDbClient as tributaryDynamoDb } from '@tributary/aws/dynamodb';
import { main } from '@tributary/cli';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTable, dynamoDbClient, startDynalite, useServers } from '../../../test-support/emulators.js';

const servers = useServers(async () => {
  const dynamo = await startDynalite();
  return { dynamo, close: () => dynamo.close() };
});

/** What a command run in process printed. */
function capture() {
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
  return { io, out: () => out, err: () => err };
}

// `main` puts the env files' variables into process.env (for the SDK): each test gets its own back.
const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-env-file-'));
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
});

/** The 1-based line:column of the first `needle` in `text`. */
function at(text: string, needle: string): string {
  const i = text.indexOf(needle);
  if (i === -1) throw new Error(`${needle} not in text`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${(before.at(-1) as string).length + 1}`;
}

const unset = (name: string) =>
  `\${${name}} is not set (give it in the environment or --env-file, or write \${${name}:-default})`;

describe('--env-file', () => {
  const pipeline = `version: 1
name: \${NAME}
source:
  file:
    path: \${INPUT:-in.jsonl}
steps:
  - filter: event.kind == "\${KIND}"
  - sink:
      file:
        path: \${OUT}
`;

  it('fills ${NAME} references; a later file wins over an earlier one and over the environment', async () => {
    const file = join(dir, 'describe.yaml');
    await writeFile(file, pipeline);
    await writeFile(join(dir, 'a.env'), '# the first file\nNAME=from-a\nKIND=from-a\nOUT=a-out.jsonl\n');
    await writeFile(join(dir, 'b.env'), 'export KIND="from-b"\n');
    process.env.NAME = 'from-environment';
    process.env.OUT = 'environment-out.jsonl';
    const c = capture();
    // Before the command's name and after it, both forms.
    const code = await main(
      ['--env-file', join(dir, 'a.env'), 'describe', file, `--env-file=${join(dir, 'b.env')}`],
      c.io,
    );
    expect(c.err()).toBe('');
    expect(code).toBe(0);
    // The graph names the pipeline, the filter's expression and the output as substituted.
    expect(c.out()).toContain('from-a');
    expect(c.out()).not.toContain('from-environment');
    expect(c.out()).toContain('event.kind == "from-b"');
    expect(c.out()).toContain('a-out.jsonl');
    // And the variables are in the environment of the command (the AWS SDK reads them there).
    expect(process.env.KIND).toBe('from-b');
  });

  it('validate reports every unset variable as a problem at its line and column (exit 1), and accepts the file with them set', async () => {
    const file = join(dir, 'validate.yaml');
    await writeFile(file, pipeline);
    const c = capture();
    expect(await main(['validate', file], c.io)).toBe(1);
    expect(c.err().trim().split('\n')).toEqual([
      `${file}:${at(pipeline, '${NAME}')}: ${unset('NAME')}`,
      `${file}:${at(pipeline, '${KIND}')}: ${unset('KIND')}`,
      `${file}:${at(pipeline, '${OUT}')}: ${unset('OUT')}`,
    ]);
    await writeFile(join(dir, 'ok.env'), 'NAME=n\nKIND=k\nOUT=o.jsonl\n');
    const ok = capture();
    expect(await main(['validate', file, '--env-file', join(dir, 'ok.env')], ok.io)).toBe(0);
    expect(ok.err()).toBe(`${file}: ok\n`);
  });

  it('a missing or unreadable env file is a usage error naming it (exit 64)', async () => {
    const file = join(dir, 'missing.yaml');
    await writeFile(file, pipeline);
    const missing = join(dir, 'nope.env');
    const c = capture();
    expect(await main(['validate', file, '--env-file', missing], c.io)).toBe(64);
    expect(c.err().split('\n')[0]).toMatch(new RegExp(`^--env-file ${missing}: cannot read it: ENOENT`));
    const d = capture();
    expect(await main(['validate', file, '--env-file', dir], d.io)).toBe(64);
    expect(d.err().split('\n')[0]).toBe(`--env-file ${dir}: not a regular file`);
  });

  it('a line that is not NAME=value is a usage error at its line (Node would join it to the next name)', async () => {
    const file = join(dir, 'lines.yaml');
    await writeFile(file, pipeline);
    const cases: [string, number, string][] = [
      ['NAME=n\nKIND\nOUT=o\n', 2, 'expected NAME=value, got `KIND`'],
      [
        '# c\n\nNAME=n\n1KIND=k\n',
        4,
        '`1KIND` is not a variable name (letters, digits and _, not starting with a digit)',
      ],
      [
        'NAME="two\nlines"\nKIND.x=k\n',
        3,
        '`KIND.x` is not a variable name (letters, digits and _, not starting with a digit)',
      ],
    ];
    for (const [i, [text, line, message]] of cases.entries()) {
      const env = join(dir, `bad${i}.env`);
      await writeFile(env, text);
      const c = capture();
      expect(await main(['validate', file, '--env-file', env], c.io)).toBe(64);
      expect(c.err().split('\n')[0]).toBe(`--env-file ${env}:${line}: ${message}`);
    }
    // A quoted value over several lines, comments and `export` are fine, and the values are Node's.
    const env = join(dir, 'good.env');
    await writeFile(env, '# comment\nexport NOTE="multi\nline"\nNAME=n\n  KIND = k  \nOUT=\'o.jsonl\' # trailing\n');
    const c = capture();
    expect(await main(['validate', file, '--env-file', env], c.io)).toBe(0);
    expect(c.err()).toBe(`${file}: ok\n`);
    expect([process.env.NOTE, process.env.NAME, process.env.KIND, process.env.OUT]).toEqual([
      'multi\nline',
      'n',
      'k',
      'o.jsonl',
    ]);
  });

  it('every command that loads a pipeline takes it (and its --help names it)', async () => {
    for (const command of [['validate'], ['run'], ['describe'], ['state', 'init'], ['synth'], ['lambda-local']]) {
      const c = capture();
      expect(await main([...command, '--help'], c.io)).toBe(0);
      expect(c.out()).toContain('--env-file <file>');
    }
  });
});

describe('the AWS SDK variables point Tributary at emulators', () => {
  it('AWS_ENDPOINT_URL_<SERVICE> (else AWS_ENDPOINT_URL) is the endpoint; on loopback, local credentials and region', () => {
    const env = { AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_ENDPOINT_URL_DYNAMODB: 'http://localhost:2' };
    expect(environmentEndpoint('DYNAMODB', env)).toBe('http://localhost:2');
    expect(environmentEndpoint('KINESIS', env)).toBe('http://127.0.0.1:1');
    expect(environmentEndpoint('DYNAMODB', { ...env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' })).toBeUndefined();
    for (const k of ['AWS_ENDPOINT_URL', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_PROFILE']) delete process.env[k];
    process.env.AWS_ENDPOINT_URL_KINESIS = 'http://127.0.0.1:4567';
    const local = awsClientConfig({ service: 'KINESIS' });
    expect(local.credentials).toEqual({ accessKeyId: 'local', secretAccessKey: 'local' });
    expect(local.region).toBe('us-east-1');
    // The endpoint itself is left to the SDK, which reads the variable.
    expect(local.endpoint).toBeUndefined();
    // Another service's client is not affected; an endpoint that is not on loopback changes nothing.
    expect(awsClientConfig({ service: 'SQS' }).credentials).toBeUndefined();
    process.env.AWS_ENDPOINT_URL_KINESIS = 'https://vpce-1.kinesis.eu-west-1.vpce.amazonaws.com';
    expect(awsClientConfig({ service: 'KINESIS' })).not.toHaveProperty('credentials');
    // Credentials the environment names are kept.
    process.env.AWS_ENDPOINT_URL_KINESIS = 'http://127.0.0.1:4567';
    process.env.AWS_PROFILE = 'dev';
    expect(awsClientConfig({ service: 'KINESIS' })).not.toHaveProperty('credentials');
  });

  it.each([
    ['localhost', true],
    ['LOCALHOST', true],
    ['api.localhost', true],
    ['127.0.0.1', true],
    ['127.10.20.30', true],
    ['[::1]', true],
    ['::1', true],
    ['0.0.0.0', true],
    ['[::ffff:7f00:1]', true],
    ['::ffff:127.0.0.1', true],
    ['128.0.0.1', false],
    ['10.0.0.1', false],
    ['localhost.example.com', false],
    ['dynamodb.eu-west-1.amazonaws.com', false],
  ])('isLoopbackHost(%j) is %j', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });

  it("the installed SDK's DynamoDB client reaches dynalite through AWS_ENDPOINT_URL_DYNAMODB, with no endpoint given", async () => {
    for (const k of ['AWS_ENDPOINT_URL', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_PROFILE']) delete process.env[k];
    const admin = dynamoDbClient(servers.dynamo.endpoint);
    await createTable(admin, 'direct');
    process.env.AWS_ENDPOINT_URL_DYNAMODB = servers.dynamo.endpoint;
    const client = tributaryDynamoDb();
    try {
      const scan = await client.send(new ScanCommand({ TableName: 'direct' }));
      expect(scan.Count).toBe(0);
    } finally {
      client.destroy();
      admin.destroy();
    }
  });

  it('tributary run with an env file writes a DynamoDB sink without an endpoint in the pipeline to dynalite', async () => {
    for (const k of ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_REGION']) delete process.env[k];
    const admin = dynamoDbClient(servers.dynamo.endpoint);
    await createTable(admin, 'usage-local');
    const events = Array.from({ length: 240 }, (_, i) => ({
      id: `e${i}`,
      customer: `c${(i * 7) % 11}`,
      kind: i % 3 === 0 ? 'call' : 'sms',
      units: (i * 13) % 17,
    }));
    await writeFile(join(dir, 'usage.jsonl'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const file = join(dir, 'usage.yaml');
    await writeFile(
      file,
      `version: 1
name: usage-\${STAGE}
source:
  file:
    path: \${INPUT}
    batchSize: \${BATCH:-25}
steps:
  - filter: event.kind == "\${KIND:-call}"
  - sink:
      dynamodb:
        table: \${USAGE_TABLE}
`,
    );
    await writeFile(
      join(dir, 'local.env'),
      `STAGE=local\nINPUT=usage.jsonl\nUSAGE_TABLE=usage-local\nAWS_ENDPOINT_URL_DYNAMODB=${servers.dynamo.endpoint}\n`,
    );
    const c = capture();
    const code = await main(['run', file, '--env-file', join(dir, 'local.env'), '--quiet'], c.io);
    expect(c.err()).not.toMatch(/error|failed/i);
    expect(code).toBe(0);
    const items = [];
    let start: Record<string, never> | undefined;
    do {
      const page = await admin.send(new ScanCommand({ TableName: 'usage-local', ExclusiveStartKey: start }));
      items.push(...(page.Items ?? []).map((i) => unmarshall(i)));
      start = page.LastEvaluatedKey as never;
    } while (start);
    admin.destroy();
    // The oracle: the input's calls, each once.
    const expected = events.filter((e) => e.kind === 'call');
    const byId = (a: { id?: unknown }, b: { id?: unknown }) => String(a.id).localeCompare(String(b.id));
    expect(items.sort(byId)).toEqual(expected.sort(byId));
  });
});

describe('the README section "One pipeline, many environments"', () => {
  it('its pipeline validates with the values it names, and the error it quotes is the one printed', async () => {
    const readme = await readFile(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## One pipeline, many environments'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1] as string;
    const file = join(dir, 'usage.yaml');
    await writeFile(file, yaml);
    await writeFile(join(dir, 'prod.env'), 'STAGE=prod\nSTREAM=calls\nUSAGE_TABLE=usage-prod\n');
    const ok = capture();
    expect(await main(['validate', file, '--env-file', join(dir, 'prod.env')], ok.io)).toBe(0);
    expect(ok.err()).toBe(`${file}: ok\n`);
    const quoted = /`(usage\.yaml:\d+:\d+: \$\{STREAM\} is not set \([^`]*\))`/.exec(section.replace(/\n\s+/g, ' '));
    expect(quoted).not.toBeNull();
    await writeFile(join(dir, 'no-stream.env'), 'STAGE=prod\nUSAGE_TABLE=usage-prod\n');
    // (The first command put STREAM into this process's environment, as a command does.)
    delete process.env.STREAM;
    const bad = capture();
    expect(await main(['validate', file, '--env-file', join(dir, 'no-stream.env')], bad.io)).toBe(1);
    expect(bad.err()).toBe(`${join(dir, quoted?.[1] as string)}\n`);
  });
});
