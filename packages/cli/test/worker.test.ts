// `tributary worker`: its flags and their refusals, its help, and the refusal of a source the
// worker does not read, in process (`main`).
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { worker } from '../src/commands/worker.js';
import { main } from '../src/main.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-worker-cli-'));
});

/** Runs the command line in process: its exit status and what it wrote. */
async function tributary(args: string[]) {
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, cb) {
        append(String(chunk));
        cb();
      },
    });
  const code = await main(args, {
    out: sink((s) => {
      out += s;
    }),
    err: sink((s) => {
      err += s;
    }),
  });
  return { code, out, err };
}

/** A pipeline of `source` (one YAML line, on line 3). */
const pipelineYaml = (source: string, name = 'worker-cli') => `version: 1
name: ${name}
source: ${source}
steps:
  - map: { user: event.user }
  - sink: { file: { path: out.jsonl } }
`;

describe('tributary worker: flags', () => {
  it('is listed in the usage of tributary --help', async () => {
    const r = await tributary(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`  tributary ${worker.usage}\n`);
    expect(worker.usage).toMatch(
      /^worker <pipeline\.yaml> \[--app <name>\] \[--worker-id <id>\] \[--metrics-port <port>\]/,
    );
  });

  it('--help documents every flag of the command, and the global ones', async () => {
    const r = await tributary(['worker', '--help']);
    expect(r.code).toBe(0);
    const flags = Object.keys(worker.options);
    expect(flags.sort()).toEqual(['app', 'endpoint', 'metrics-host', 'metrics-port', 'worker-id']);
    for (const flag of flags) expect(r.out).toMatch(new RegExp(`\\n  --${flag} <[a-z]+> +\\S`));
    for (const global of ['--verbose', '--allow-outside-project', '--env-file <file>'])
      expect(r.out).toContain(`  ${global}`);
    expect(r.out).toContain('TRIBUTARY_LOG_LEVEL');
    expect(r.out).toContain('SIGINT/SIGTERM');
  });

  const usageCases: [string, string[], string][] = [
    ['no pipeline file', ['worker'], 'worker needs one pipeline file'],
    ['two pipeline files', ['worker', 'a.yaml', 'b.yaml'], 'worker needs one pipeline file'],
    [
      'a port out of range',
      ['worker', 'p.yaml', '--metrics-port', '65536'],
      'Expected `--metrics-port` to be an integer from 0 to 65535, got 65536',
    ],
    [
      'a port that is no integer',
      ['worker', 'p.yaml', '--metrics-port', '80a'],
      'Expected `--metrics-port` to be an integer from 0 to 65535, got 80a',
    ],
    [
      'an app that is no table name',
      ['worker', 'p.yaml', '--app', 'my app'],
      'Expected `--app` to be 3 to 255 letters, digits, _, - or . (a DynamoDB table name), got "my app"',
    ],
    [
      'a worker id with a space',
      ['worker', 'p.yaml', '--worker-id', 'a b'],
      'Expected `--worker-id` to be 1 to 255 characters without spaces, got "a b"',
    ],
    [
      'an endpoint that is no URL',
      ['worker', 'p.yaml', '--endpoint', 'localhost:4567'],
      'Expected `--endpoint` to be an http:// or https:// URL, got localhost:4567',
    ],
    ['an unknown flag', ['worker', 'p.yaml', '--shards', '4'], "Unknown option '--shards'"],
  ];
  for (const [what, args, message] of usageCases) {
    it(`${what}: a usage error (64) saying why, with the command's usage`, async () => {
      const r = await tributary(args);
      expect(r.code).toBe(64);
      expect(r.err.startsWith(message)).toBe(true);
      expect(r.err).toContain(
        `Usage:\n  tributary ${worker.usage}\n\nRun \`tributary worker --help\` for its options.\n`,
      );
    });
  }
});

describe('tributary worker: the source', () => {
  for (const [kind, source] of [
    ['file', '{ file: { path: events.jsonl } }'],
    ['dynamodbStream', '{ dynamodbStream: { table: users } }'],
  ] as const) {
    it(`refuses a ${kind} source at its line and column (exit 1), saying the worker reads kinesis sources`, async () => {
      const file = join(dir, `${kind}.yaml`);
      const text = pipelineYaml(source);
      await writeFile(file, text);
      // Where the source's value is: on the line of `source:`, after it (1-based).
      const lines = text.split('\n');
      const line = lines.findIndex((l) => l.startsWith('source:')) + 1;
      const column = (lines[line - 1] as string).indexOf('{') + 1;
      const r = await tributary(['worker', file, '--metrics-port', '0']);
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `${file}:${line}:${column}: the worker reads Kinesis streams only (a \`kinesis\` source), not a ${kind} source; run this pipeline with \`tributary run\`${kind === 'dynamodbStream' ? ' or deploy it to Lambda (`tributary synth`)' : ''}\n`,
      );
    });
  }

  it('refuses an invalid pipeline with every problem at its line and column (exit 1), as validate does', async () => {
    const file = join(dir, 'invalid.yaml');
    await writeFile(file, 'version: 1\nname: bad\nsource: { kinesis: { stream: s } }\nsteps:\n  - nosuchstep: {}\n');
    const r = await tributary(['worker', file]);
    const v = await tributary(['validate', file]);
    expect(r.code).toBe(1);
    expect(v.code).toBe(1);
    expect(r.err).toBe(v.err);
    expect(r.err).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: `));
  });

  it('refuses a pipeline name that is no table name, unless --app names one', async () => {
    const file = join(dir, 'named.yaml');
    // (Checked before anything is connected to: the endpoint is never called.)
    await writeFile(file, pipelineYaml('{ kinesis: { stream: clicks, endpoint: "http://127.0.0.1:9" } }', 'ab'));
    const r = await tributary(['worker', file, '--metrics-port', '0']);
    expect(r.code).toBe(64);
    expect(r.err.split('\n')[0]).toBe(
      "the pipeline's name `ab` is not a DynamoDB table name (3 to 255 letters, digits, _, - or .): give `--app <name>`",
    );
  });
});
