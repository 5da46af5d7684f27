// Errors: every package throws its own TributaryError types (no plain Error in src), and an error
// raised while compiling a component is a validation issue at that component's spec — with the
// file, line and column of a YAML pipeline.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Every package with a source tree: all their errors are TributaryErrors (a new package is scanned as it comes). */
const PACKAGES = readdirSync(join(root, 'packages'), { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(join(root, 'packages', e.name, 'src')))
  .map((e) => e.name);

/**
 * The code of a TypeScript source, without the text of its string, template and regular expression
 * literals and its comments (each character blanked, line breaks kept, so lines keep their
 * numbers): code a file generates as text — synth writes the stubs of a bundle — is not its own.
 * The code inside a template literal's `${…}` is kept.
 */
function codeOnly(source: string): string {
  let out = '';
  let i = 0;
  /** Open template literals, each with the depth of braces of its innermost `${…}`. */
  const templates: number[] = [];
  /** The last character of code before this point that is not blank (it tells a regex from a division). */
  let last = '';
  const blank = (c: string) => (c === '\n' ? '\n' : ' ');
  const skip = (end: number) => {
    for (; i < end; i++) out += blank(source[i] as string);
  };
  while (i < source.length) {
    const c = source[i] as string;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      skip(end < 0 ? source.length : end);
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      skip(end < 0 ? source.length : end + 2);
    } else if (c === "'" || c === '"' || (c === '/' && (last === '' || /[(,=:[!&|?{};+\-*%<>~^]/.test(last)))) {
      // A string, or a regular expression where an operand is expected: up to its closing quote or slash.
      let j = i + 1;
      let inClass = false;
      for (; j < source.length && source[j] !== '\n'; j++) {
        const d = source[j];
        if (d === '\\') j++;
        else if (c === '/' && d === '[') inClass = true;
        else if (c === '/' && d === ']') inClass = false;
        else if (d === c && !inClass) break;
      }
      out += c;
      i++;
      skip(j);
      if (i < source.length) {
        out += source[i];
        i++;
      }
      last = c;
    } else if (c === '`' || (c === '}' && templates.length > 0 && templates.at(-1) === 0)) {
      // A template literal's text, from its start (or the end of a `${…}`) to its end (or the next `${`).
      if (c === '}') templates.pop();
      out += c;
      i++;
      for (; i < source.length; i++) {
        const d = source[i] as string;
        if (d === '\\') {
          out += '  ';
          i++;
        } else if (d === '`') break;
        else if (d === '$' && source[i + 1] === '{') break;
        else out += blank(d);
      }
      if (source[i] === '$') {
        out += '${';
        i += 2;
        templates.push(0);
        last = '{';
      } else {
        out += '`';
        i++;
        last = '`';
      }
    } else {
      const top = templates.length - 1;
      if (top >= 0 && (c === '{' || c === '}')) templates[top] = (templates[top] as number) + (c === '{' ? 1 : -1);
      out += c;
      i++;
      if (!/\s/.test(c)) last = /[\w$)\]]/.test(c) ? 'a' : c;
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('error types', () => {
  it('no src file of any package throws a plain Error or declares an error class outside its errors.ts', () => {
    expect(PACKAGES).toEqual(
      expect.arrayContaining(['aws', 'cli', 'core', 'runtime-lambda', 'runtime-node', 'sinks', 'state']),
    );
    const found: string[] = [];
    for (const pkg of PACKAGES) {
      for (const file of sourceFiles(join(root, 'packages', pkg, 'src'))) {
        const text = readFileSync(file, 'utf8');
        const lines = text.split('\n');
        const errorsFile = file.endsWith('/errors.ts');
        codeOnly(text)
          .split('\n')
          .forEach((line, i) => {
            const where = `${relative(root, file)}:${i + 1}: ${lines[i]?.trim()}`;
            if (/throw new (Error|TypeError|RangeError)\(/.test(line)) found.push(where);
            if (!errorsFile && /class \w+ extends (Error|TributaryError|[A-Za-z]+Error)\b/.test(line))
              found.push(where);
          });
      }
    }
    expect(found).toEqual([]);
  });

  it('the scan reads code, not the text of literals or comments (lines keep their numbers)', () => {
    const source = [
      "const stub = 'throw new Error(1)'; // throw new Error(2)",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: source text holding a template literal
      'const gen = `export function f() { throw new Error(${JSON.stringify("a`b")}); }`;',
      "const re = /throw new Error\\(['\"`]/; /* throw new Error( */ if (x) throw new Error('real');",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: source text holding template literals
      '`${`${"}"}`}` + `x`; throw new TypeError(`y`);',
    ].join('\n');
    const code = codeOnly(source).split('\n');
    expect(code).toHaveLength(4);
    expect(code.map((line) => /throw new (Error|TypeError)\(/.test(line))).toEqual([false, false, true, true]);
    expect(code[1]).toContain('${JSON.stringify(');
    expect(code.every((line, i) => line.length === source.split('\n')[i]?.length)).toBe(true);
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
