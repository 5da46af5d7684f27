import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

// The CLI as users run it: the built bin (`pnpm test` builds first).
const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
function tributary(args: string[], options: { input?: string; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    input: options.input,
    cwd: options.cwd,
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
const events = Array.from({ length: 300 }, (_, i) => ({
  type: i % 3 === 0 ? 'view' : 'click',
  user: `u${i % 7}`,
  amount: (i * 13) % 200,
}));

beforeAll(async () => {
  expect(existsSync(bin), 'run `pnpm build` first').toBe(true);
  dir = await mkdtemp(join(tmpdir(), 'trib-cli-'));
  const lines = events.map((e) => JSON.stringify(e));
  lines.splice(10, 0, 'not json');
  await writeFile(join(dir, 'events.jsonl'), `${lines.join('\n')}\n`);
  await writeFile(
    join(dir, 'pipeline.yaml'),
    `version: 1
name: cli-test
source: { file: { path: events.jsonl, batchSize: 64 } }
steps:
  - filter: event.type == "click"
  - map: { user: event.user, amount: event.amount }
  - sink: { file: { path: out.jsonl } }
deadLetter: { file: { path: dead.jsonl } }
`,
  );
  await writeFile(
    join(dir, 'bad.yaml'),
    `version: 1
name: bad
source: { file: { path: events.jsonl } }
steps:
  - filtr: event.type == "click"
  - map: { user: event.user, amount: event.amount + }
  - sink: { file: { path: never.jsonl } }
`,
  );
});

const readLines = async (f: string) =>
  (await readFile(f, 'utf8'))
    .trimEnd()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const expected = () => events.filter((e) => e.type === 'click').map((e) => ({ user: e.user, amount: e.amount }));

describe('tributary CLI', () => {
  it('validate: ok for a good file, every problem as file:line:column for a bad one (exit 1)', () => {
    const good = tributary(['validate', join(dir, 'pipeline.yaml')]);
    expect(good.code).toBe(0);
    expect(good.stderr).toContain('pipeline.yaml: ok');
    const bad = tributary(['validate', 'bad.yaml'], { cwd: dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trimEnd().split('\n')).toEqual([
      'bad.yaml:5:5: unknown step `filtr` (did you mean `filter`?); expected one of filter, map, flatMap, enrich, keyBy, branch, sink, window',
      'bad.yaml:6:52: expression does not parse: Unexpected token: EOF',
    ]);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('run: fails an invalid pipeline before reading a record', () => {
    const r = tributary(['run', 'bad.yaml'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(existsSync(join(dir, 'never.jsonl'))).toBe(false);
  });

  it('run: writes the sinks and dead letters and prints a summary', async () => {
    const r = tributary(['run', join(dir, 'pipeline.yaml')]);
    expect(r.code).toBe(0);
    expect(await readLines(join(dir, 'out.jsonl'))).toEqual(expected());
    const dead = await readLines(join(dir, 'dead.jsonl'));
    expect(dead).toMatchObject([
      { reason: 'decode', line: 11, sequenceNumber: '11', data: 'not json', pipeline: 'cli-test' },
    ]);
    const n = expected().length;
    expect(r.stderr).toMatch(
      new RegExp(
        `^cli-test: 301 records in, ${n.toLocaleString('en-US')} written, 1 dead-lettered, ${events.length - n} filtered in [\\d.]+ s \\([\\d,]+ records/s\\)\\n$`,
      ),
    );
  });

  it('run: --input, --output and --dead-letter override the file paths; - means stdin/stdout', async () => {
    const sub = await mkdtemp(join(tmpdir(), 'trib-cli-o-'));
    const r = tributary(
      [
        'run',
        join(dir, 'pipeline.yaml'),
        '--input',
        join(dir, 'events.jsonl'),
        '--output',
        'x.jsonl',
        '--dead-letter',
        'd.jsonl',
        '--batch-size',
        '7',
      ],
      { cwd: sub },
    );
    expect(r.code).toBe(0);
    expect(await readLines(join(sub, 'x.jsonl'))).toEqual(expected());
    expect(await readLines(join(sub, 'd.jsonl'))).toHaveLength(1);

    const piped = tributary(['run', join(dir, 'pipeline.yaml'), '--input', '-', '--output', '-', '--quiet'], {
      input: '{"type":"click","user":"a","amount":1}\n{"type":"view","user":"b","amount":2}\n',
    });
    expect(piped.code).toBe(0);
    expect(piped.stdout).toBe('{"user":"a","amount":1}\n');
    expect(piped.stderr).toBe('');
  });

  it('run: exit 3 with --fail-on-dead-letter, exit 2 when a sink fails', async () => {
    expect(tributary(['run', join(dir, 'pipeline.yaml'), '--fail-on-dead-letter', '--quiet']).code).toBe(3);
    const failing = tributary(['run', join(dir, 'pipeline.yaml'), '--output', dir, '--quiet']);
    expect(failing.code).toBe(2);
    expect(failing.stderr).toMatch(/^cli-test: failed: .*(EISDIR|directory)/);
  });

  it('describe, schema, docs and usage errors', () => {
    const d = tributary(['describe', join(dir, 'pipeline.yaml')]);
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('filter-0     filter   event.type == "click"');
    const s = tributary(['schema']);
    expect(JSON.parse(s.stdout).title).toBe('Tributary pipeline');
    expect(tributary(['docs']).stdout).toContain('### `enrich`');
    expect(tributary(['frobnicate']).code).toBe(64);
    expect(tributary(['run', join(dir, 'pipeline.yaml'), '--batch-size', '0']).stderr).toContain(
      'Expected `--batch-size` to be an integer from 1 to 100000, got 0',
    );
  });
});

describe('tributary --help', () => {
  it('lists every command; `tributary <command> --help` prints that command, its flags and the global ones', () => {
    const all = tributary(['--help']);
    expect(all.code).toBe(0);
    for (const c of ['validate', 'run', 'describe', 'schema', 'docs', 'state init', 'synth', 'lambda-local'])
      expect(all.stdout).toContain(`\n  tributary ${c}`);
    const run = tributary(['run', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage:\n {2}tributary run <pipeline\.yaml> /);
    expect(run.stdout).toContain('--fail-on-dead-letter');
    expect(run.stdout).toContain('--verbose');
    expect(run.stdout).not.toContain('tributary validate');
    expect(tributary(['lambda-local', '--help']).stdout).toContain('--parallelization <n>');
    expect(tributary(['state', '--help']).stdout).toMatch(/^Usage:\n {2}tributary state init <pipeline\.yaml>\n/);
  });

  it('a command takes its own flags only (and the global ones)', () => {
    const r = tributary(['validate', join(dir, 'pipeline.yaml'), '--stream', 's']);
    expect(r.code).toBe(64);
    expect(r.stderr.split('\n')[0]).toMatch(/^Unknown option '--stream'/);
    expect(tributary(['validate', join(dir, 'pipeline.yaml'), '--verbose']).code).toBe(0);
  });
});

describe('tributary run on a terminal', () => {
  it('paints progress on a TTY and ends with the summary', async () => {
    const { main } = await import('@tributary/cli');
    let err = '';
    const write = (s: string) => {
      err += s;
      return true;
    };
    const io = { out: { write: () => true }, err: { isTTY: true, write } } as never;
    expect(await main(['run', join(dir, 'pipeline.yaml')], io)).toBe(0);
    expect(err).toContain('\r\x1b[Kcli-test: ');
    expect(err.endsWith(' records/s)\n')).toBe(true);
  });
});
