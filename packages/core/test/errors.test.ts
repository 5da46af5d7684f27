// Errors: every package throws its own TributaryError types (no plain Error in src), and an error
// raised while compiling a component is a validation issue at that component's spec — with the
// file, line and column of a YAML pipeline.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  ConfigError,
  compile,
  count,
  fileSource,
  formatIssue,
  loadPipelineFile,
  MemorySink,
  type Pipeline,
  PipelineValidationError,
  pipeline,
  TributaryError,
  type ValidationIssue,
} from '@tributary/core';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../..');

/** The source trees whose errors are all TributaryErrors (packages/cli and packages/aws join when converted). */
const CONVERTED = ['core', 'state', 'sinks', 'runtime-lambda', 'runtime-node'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('error types', () => {
  it('no src file of a converted package throws a plain Error or declares an error class outside its errors.ts', () => {
    const found: string[] = [];
    for (const pkg of CONVERTED) {
      for (const file of sourceFiles(join(root, 'packages', pkg, 'src'))) {
        const lines = readFileSync(file, 'utf8').split('\n');
        const errorsFile = file.endsWith('/errors.ts');
        lines.forEach((line, i) => {
          const where = `${relative(root, file)}:${i + 1}: ${line.trim()}`;
          if (/throw new (Error|TypeError|RangeError)\(/.test(line)) found.push(where);
          if (!errorsFile && /class \w+ extends (Error|TributaryError|[A-Za-z]+Error)\b/.test(line)) found.push(where);
        });
      }
    }
    expect(found).toEqual([]);
  });

  it('subclasses name themselves and keep the cause', () => {
    const cause = new Error('socket hang up');
    const err = new ConfigError('Expected `url`', { cause });
    expect(err).toBeInstanceOf(TributaryError);
    expect(err.name).toBe('ConfigError');
    expect(err.cause).toBe(cause);
  });
});

function pipelineFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-errors-'));
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, text);
  return file;
}

/** The issues of the PipelineValidationError that compiling `p` throws. */
function compileIssues(p: Pipeline): readonly ValidationIssue[] {
  try {
    compile(p);
  } catch (err) {
    if (err instanceof PipelineValidationError) return err.issues;
    throw err;
  }
  throw new Error('the pipeline compiled');
}

const head = 'version: 1\nname: p\nsource: { file: { path: in.jsonl } }\n';

describe('errors raised while compiling a component', () => {
  it('a hopping window that would skip records: file, line, column and path of its spec', async () => {
    const file = pipelineFile(
      `${head}steps:
  - filter: event.n > 0
  - keyBy: event.user
  - filter: event.n < 100
  - window: { hopping: { size: 1m, every: 2m }, aggregate: { n: count() } }
  - sink: { stdout: {} }
`,
    );
    // The schema accepts it; the window step refuses it when it is compiled.
    const p = await loadPipelineFile(file);
    const issues = compileIssues(p);
    expect(issues).toEqual([
      {
        file,
        line: 8,
        column: 13,
        path: '/steps/3/window',
        message: 'hopping `every` must not exceed `size` (records would fall between windows)',
      },
    ]);
    expect(issues.map(formatIssue)).toEqual([
      `${file}:8:13: hopping \`every\` must not exceed \`size\` (records would fall between windows)`,
    ]);
  });

  it('a step inside a branch route, after other nested steps, is reported at its own path', async () => {
    const file = pipelineFile(
      `${head}steps:
  - branch:
      routes:
        - when: event.n > 0
          steps:
            - filter: event.n > 1
            - window:
                hopping: { size: 30s, every: 1m }
                aggregate: { n: count() }
  - filter: event.n > 2
`,
    );
    expect(compileIssues(await loadPipelineFile(file))).toEqual([
      {
        file,
        line: 11,
        column: 17,
        path: '/steps/0/branch/routes/0/steps/1/window',
        message: 'hopping `every` must not exceed `size` (records would fall between windows)',
      },
    ]);
  });

  it('every component refused is reported at once, in definition order', async () => {
    const file = pipelineFile(
      `${head}steps:
  - window: { hopping: { size: 1m, every: 2m }, aggregate: { n: count() } }
  - filter: event.n > 0
  - window: { hopping: { size: 0s, every: 0s }, aggregate: { n: count() } }
`,
    );
    const issues = compileIssues(await loadPipelineFile(file));
    expect(issues.map(formatIssue)).toEqual([
      `${file}:5:13: hopping \`every\` must not exceed \`size\` (records would fall between windows)`,
      `${file}:7:13: window size must be greater than 0`,
    ]);
    expect(issues.map((i) => i.path)).toEqual(['/steps/0/window', '/steps/2/window']);
  });

  it('a pipeline built in TypeScript: the issue names the path (no file, no position)', () => {
    const p = pipeline('built')
      .source(fileSource<{ user: string }>({ path: 'x' }))
      .filter((e) => e.user !== '')
      .window({ key: (e) => e.user, hopping: { size: 1000, every: 5000 }, aggregate: { n: count() } })
      .sink(new MemorySink())
      .build();
    const issues = compileIssues(p);
    expect(issues).toEqual([
      {
        file: undefined,
        path: '/steps/1/window',
        message: 'hopping `every` must not exceed `size` (records would fall between windows)',
      },
    ]);
    expect(formatIssue(issues[0] as ValidationIssue)).toBe(
      '<pipeline>: hopping `every` must not exceed `size` (records would fall between windows) (at /steps/1/window)',
    );
  });
});
