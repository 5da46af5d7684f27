// `@tributary/runtime-lambda/handler` is the lean entry (a bundle enters through it, importing
// only the components its pipeline uses): imported alone, it registers core's components only.
// A pipeline file naming a `kinesis` sink or `dynamodb` state is then refused with what to
// import; the package entry `@tributary/runtime-lambda` registers them and loads it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'trib-handler-entry-'));
const file = join(dir, 'p.yaml');
writeFileSync(
  file,
  `version: 1
name: entry
source: { file: { path: in.jsonl } }
steps:
  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { dynamodb: { table: tbl, region: us-east-1 } } }
  - sink: { kinesis: { stream: s, partitionKey: event.key, region: us-east-1 } }
`,
);

/** What createHandler(file) of `entry` does at init, in a fresh process (as a handler module runs). */
function loadIn(entry: string, pipelineFile = file): string {
  const script = `
    const { createHandler } = await import(${JSON.stringify(entry)});
    const h = createHandler(${JSON.stringify(pipelineFile)}, { log: () => {}, shards: ['shardId-0'] });
    try { await h.ready; console.log('loaded'); } catch (e) { console.log(e.name); for (const i of e.issues ?? []) console.log(i.line + ': ' + i.message); }`;
  const r = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
    cwd: join(import.meta.dirname, '..'),
    encoding: 'utf8',
  });
  return r.stdout.trim();
}

const hint =
  " — no package that registers it is loaded (only core's components are registered): import `@tributary/runtime-lambda` (which loads `@tributary/sinks` and `@tributary/state`) or the package that provides it";

describe('@tributary/runtime-lambda/handler alone', () => {
  it('refuses a Kinesis sink and DynamoDB state, saying which package to import', () => {
    expect(loadIn('@tributary/runtime-lambda/handler').split('\n')).toEqual([
      'PipelineValidationError',
      `5: unknown state store \`dynamodb\`; expected one of memory, ref${hint}`,
      `6: unknown sink \`kinesis\`; expected one of file, stdout, stderr, ref${hint}`,
    ]);
  });
});

describe('@tributary/runtime-lambda', () => {
  it('loads the same pipeline file', () => {
    expect(loadIn('@tributary/runtime-lambda')).toBe('loaded');
  });

  it('refuses an unknown kind without the hint, its packages being loaded', () => {
    const typo = join(dir, 'typo.yaml');
    writeFileSync(
      typo,
      'version: 1\nname: typo\nsource: { file: { path: in.jsonl } }\nsteps:\n  - sink: { kinesiss: { stream: s } }\n',
    );
    const out = loadIn('@tributary/runtime-lambda', typo).split('\n');
    expect(out).toEqual(['PipelineValidationError', expect.stringMatching(/^5: unknown sink `kinesiss`/)]);
    expect(out[1]).not.toContain('no package that registers it');
  });
});
