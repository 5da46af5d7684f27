// The command line's usage rules: an argument a command does not take is a usage error (64);
// global flags may come before the command; a usage error prints its command's usage (not the
// list of every command); `--version` prints the package's version; `state init` refuses a
// pipeline exactly as `validate` does, before creating anything.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
const dir = mkdtempSync(join(tmpdir(), 'trib-usage-'));
writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
writeFileSync(
  join(dir, 'ok.yaml'),
  'version: 1\nname: ok\nsource: { file: { path: in.jsonl } }\nsteps:\n  - sink: { stdout: {} }\n',
);
// Window state in DynamoDB at a closed port: creating its table would fail as a run (exit 2).
writeFileSync(
  join(dir, 'bad.yaml'),
  `version: 1
name: bad
source: { file: { path: in.jsonl } }
steps:
  - keyBy: event.user
  - window:
      hopping: { size: 1m, every: 2m }
      aggregate: { n: count() }
      state: { dynamodb: { table: tbl, region: us-east-1, endpoint: "http://127.0.0.1:9" } }
  - filter: { fn: ./fns.js#nope }
`,
);
writeFileSync(join(dir, 'fns.js'), 'export function big() { return true; }\n');

function tributary(...args: string[]) {
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' };
  return spawnSync(process.execPath, ['--no-warnings', bin, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env,
    timeout: 20_000,
  });
}

/** The usage a usage error of `command` prints: its own synopsis only. */
const usageOf = (command: string) =>
  new RegExp(
    `\\n\\nUsage:\\n {2}tributary ${command}\\b[^]*\\n\\nRun \`tributary ${command} --help\` for its options\\.\\n$`,
  );

describe('tributary usage', () => {
  for (const command of ['schema', 'docs']) {
    it(`${command} with an argument is a usage error, with ${command}'s usage`, () => {
      const r = tributary(command, 'extra');
      expect(r.status).toBe(64);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^${command} takes no arguments, got \`extra\``));
      expect(r.stderr).toMatch(usageOf(command));
      expect(r.stderr).not.toContain('tributary validate');
    });
  }

  it('an unknown flag of a command prints that command usage', () => {
    const r = tributary('run', 'ok.yaml', '--bogus');
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/^Unknown option '--bogus'/);
    expect(r.stderr).toMatch(usageOf('run'));
    expect(r.stderr).not.toContain('tributary validate');
  });

  it('a missing argument prints that command usage', () => {
    const r = tributary('validate');
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/^validate needs at least one pipeline file\n/);
    expect(r.stderr).toMatch(usageOf('validate'));
  });

  it('takes global flags before the command', () => {
    expect(tributary('--verbose', 'validate', 'ok.yaml')).toMatchObject({ status: 0, stderr: 'ok.yaml: ok\n' });
    expect(tributary('--allow-outside-project', '--verbose', 'validate', 'ok.yaml')).toMatchObject({ status: 0 });
    expect(tributary('--verbose', 'nonsense')).toMatchObject({ status: 64 });
    expect(tributary('--verbose', 'nonsense').stderr).toMatch(/^unknown command `nonsense`/);
  });

  it('--version prints the version of @tributary/cli', () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8'));
    expect(tributary('--version')).toMatchObject({ status: 0, stdout: `${version}\n` });
    expect(tributary('--help').stdout).toContain('  tributary --version\n');
  });

  it('docs --help names every category it documents', () => {
    expect(tributary('docs', '--help').stdout).toContain(
      'print the step/source/sink/lookup/store reference (Markdown)',
    );
  });
});

describe('tributary state init', () => {
  it('refuses a pipeline validate refuses, with the same located messages, before creating any table', () => {
    const validate = tributary('validate', 'bad.yaml');
    expect(validate.status).toBe(1);
    expect(validate.stderr).toContain('bad.yaml:7:7: hopping `every` must not exceed `size`');
    expect(validate.stderr).toContain('bad.yaml:10:19: module `./fns.js` has no export `nope`');
    const init = tributary('state', 'init', 'bad.yaml');
    expect(init).toMatchObject({ status: 1, stdout: '', stderr: validate.stderr });
  });
});
