// README "Command line": a usage error exits 64 and a typo is never silently ignored. The numbers
// lambda-local takes (the event source mapping's batch size, retries and parallelization factor)
// are checked before anything connects: one out of its range is a usage error naming the flag.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
const dir = mkdtempSync(join(tmpdir(), 'trib-llflags-'));
writeFileSync(
  join(dir, 'p.yaml'),
  'version: 1\nname: ll\nsource: { file: { path: in.jsonl } }\nsteps:\n  - sink: { stdout: {} }\n',
);

describe('tributary lambda-local numeric flags', () => {
  for (const [flag, value, range] of [
    ['--max-retries', 'abc', '0 to 10000'],
    ['--max-retries', '-1', '0 to 10000'],
    ['--max-retries', '10001', '0 to 10000'],
    ['--batch-size', '1.5', '1 to 10000'],
    ['--batch-size', '0', '1 to 10000'],
    ['--batch-size', '', '1 to 10000'],
    ['--parallelization', '0', '1 to 10'],
    ['--parallelization', '11', '1 to 10'],
    ['--parallelization', 'x', '1 to 10'],
  ] as const) {
    it(`refuses ${flag} ${JSON.stringify(value)} as a usage error`, () => {
      // The endpoint is a closed port: reaching it would fail as a run (exit 2), not a usage error.
      const r = spawnSync(
        process.execPath,
        [
          '--no-warnings',
          bin,
          'lambda-local',
          'p.yaml',
          '--stream',
          's',
          '--endpoint',
          'http://127.0.0.1:9',
          `${flag}=${value}`,
        ],
        {
          cwd: dir,
          encoding: 'utf8',
          env: { ...process.env, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' },
          timeout: 20_000,
        },
      );
      expect(r.status).toBe(64);
      expect(r.stderr).toContain(`Expected \`${flag}\` to be an integer from ${range}, got ${value}`);
    });
  }
});
