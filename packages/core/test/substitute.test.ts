// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` in plain strings is the syntax this file is about
// `${NAME}` and `${NAME:-default}` in YAML pipeline values: replaced before validation, with every
// problem at the line and column of its `${`. The oracle for a substituted pipeline is the same
// pipeline written with the values typed in literally.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPipelineFile, formatIssue, parsePipelineYaml } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { plainScalarValue, substituteString } from '../src/yaml/substitute.js';

const issues = (text: string, env: Record<string, string>) =>
  parsePipelineYaml(text, 'p.yaml', { env }).issues.map((i) => `${i.line}:${i.column}: ${i.message}`);

/** The 1-based line and column of the `nth` occurrence of `needle` in `text` (computed, not copied). */
function positionOf(text: string, needle: string, nth = 0): string {
  let at = -1;
  for (let k = 0; k <= nth; k++) at = text.indexOf(needle, at + 1);
  if (at === -1) throw new Error(`${needle} not in text`);
  const before = text.slice(0, at).split('\n');
  return `${before.length}:${(before.at(-1) as string).length + 1}`;
}

const unset = (name: string) =>
  `\${${name}} is not set (give it in the environment or --env-file, or write \${${name}:-default})`;

describe('substituteString', () => {
  it('replaces references, takes defaults when unset or empty, and leaves other text alone', () => {
    const env = { A: 'x', EMPTY: '', B: 'y$z' };
    expect(substituteString('no reference $A {A}', env)).toEqual({
      text: 'no reference $A {A}',
      changed: false,
      problems: [],
    });
    expect(substituteString('${A}', env).text).toBe('x');
    expect(substituteString('pre-${A}-${B}-post', env).text).toBe('pre-x-y$z-post');
    expect(substituteString('${UNSET:-d1}/${EMPTY:-d2}/${A:-d3}/${EMPTY}', env).text).toBe('d1/d2/x/');
    expect(substituteString('${UNSET:-}', env).text).toBe('');
    // The default is the text up to the first `}`, with any characters but `${` in it.
    expect(substituteString('${UNSET:-http://h:1/a?b=c}', env).text).toBe('http://h:1/a?b=c');
  });

  it('reads `$${` as a literal `${`, and does not substitute again inside a value', () => {
    expect(substituteString('$${A} and ${A}', { A: '1' }).text).toBe('${A} and 1');
    expect(substituteString('${A}', { A: '${B}' })).toEqual({ text: '${B}', changed: true, problems: [] });
  });

  it('reports every unset, unclosed and malformed reference at the index of its `${`', () => {
    const value = '${A} ${1X} ${B:-${C}} ${D ${E}';
    const problems = substituteString(value, {}).problems;
    expect(problems.map((p) => p.index)).toEqual([
      value.indexOf('${A}'),
      value.indexOf('${1X}'),
      value.indexOf('${B:-'),
      value.indexOf('${D'),
    ]);
    expect(problems[0]?.message).toBe(unset('A'));
    expect(problems[1]?.message).toMatch(/^`\$\{1X\}` is not a reference/);
    expect(problems[2]?.message).toMatch(/^a default cannot hold a reference/);
    expect(problems[3]?.message).toMatch(/^`\$\{D \$\{E\}` is not a reference/);
    expect(substituteString('tail ${OPEN', {}).problems).toEqual([
      { index: 5, message: '`${` is not closed by `}` (write `$${` for a literal `${`)' },
    ]);
  });

  it('an own property of the environment only (no prototype names)', () => {
    expect(substituteString('${constructor}', {}).problems.map((p) => p.message)).toEqual([unset('constructor')]);
  });
});

describe('plainScalarValue (a plain scalar typed as YAML types it)', () => {
  it.each([
    ['500', 500],
    ['-3', -3],
    ['0x1f', 31],
    ['1.5', 1.5],
    ['true', true],
    ['False', false],
    ['null', null],
    ['', null],
    ['~', null],
    ['500ms', '500ms'],
    ['a: b', 'a: b'],
    ['- x', '- x'],
  ])('%j → %j', (text, value) => {
    expect(plainScalarValue(text)).toEqual(value);
  });
});

describe('${...} in YAML pipelines', () => {
  const templated = `version: 1
name: \${NAME}
source:
  file:
    path: "\${IN_DIR}/events.jsonl"
    batchSize: \${BATCH}
    shardId: '\${SHARD:-file}'
steps:
  - filter: event.kind == '\${KIND:-click}'
  - sink:
      file:
        path: \${OUT:-out}/result.jsonl
        append: \${APPEND}
deadLetter: { file: { path: 'dead-$\${literal}.jsonl' } }
`;
  const literal = `version: 1
name: metering-prod
source:
  file:
    path: "/data/events.jsonl"
    batchSize: 250
    shardId: 'file'
steps:
  - filter: event.kind == 'click'
  - sink:
      file:
        path: out/result.jsonl
        append: true
deadLetter: { file: { path: 'dead-\${literal}.jsonl' } }
`;

  it('gives the spec the same pipeline written literally gives (numbers and booleans typed, quoted stays text)', () => {
    const env = { NAME: 'metering-prod', IN_DIR: '/data', BATCH: '250', APPEND: 'true' };
    const got = parsePipelineYaml(templated, 'p.yaml', { env });
    expect(got.issues).toEqual([]);
    // The oracle: the literal text read by the YAML library alone (no substitution there).
    expect(got.spec).toEqual(parse(literal, { schema: 'core' }));
    expect(typeof (got.spec as unknown as { source: { file: { batchSize: unknown } } }).source.file.batchSize).toBe(
      'number',
    );
  });

  it('a quoted reference stays a string, so a number field refuses it at the scalar', () => {
    const text = templated.replace('batchSize: ${BATCH}', 'batchSize: "${BATCH}"');
    const env = { NAME: 'n', IN_DIR: '/d', BATCH: '250', APPEND: 'false' };
    const found = issues(text, env);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(new RegExp(`^${positionOf(text, '"${BATCH}"')}: `));
  });

  it('reports every unset variable at the line and column of its `${`, plain, quoted and in flow maps', () => {
    const found = issues(templated, { IN_DIR: '/d' });
    expect(found).toEqual([
      `${positionOf(templated, '${NAME}')}: ${unset('NAME')}`,
      `${positionOf(templated, '${BATCH}')}: ${unset('BATCH')}`,
      `${positionOf(templated, '${APPEND}')}: ${unset('APPEND')}`,
    ]);
    // The path of the scalar is given too.
    const paths = parsePipelineYaml(templated, 'p.yaml', { env: { IN_DIR: '/d' } }).issues.map((i) => i.path);
    expect(paths).toEqual(['/name', '/source/file/batchSize', '/steps/1/sink/file/append']);
  });

  it('says that a reference in a flow collection must be quoted, instead of the syntax errors it causes', () => {
    const text = `version: 1
name: t
source: { file: { path: in.jsonl, batchSize: \${N} } }
steps: [{ sink: { file: { path: \${OUT} } } }]
`;
    const found = issues(text, { N: '5', OUT: 'o.jsonl' });
    expect(found).toEqual([
      `${positionOf(text, '${N}')}: a \${...} inside a flow collection ({ } or [ ]) must be quoted, e.g. "\${NAME}" (a quoted value stays a string), or the collection written in block style (one key per line)`,
      `${positionOf(text, '${OUT}')}: a \${...} inside a flow collection ({ } or [ ]) must be quoted, e.g. "\${NAME}" (a quoted value stays a string), or the collection written in block style (one key per line)`,
    ]);
    // Quoted, the path is accepted.
    const quoted = text.replace('batchSize: ${N}', 'batchSize: 5').replace('path: ${OUT}', 'path: "${OUT}"');
    expect(parsePipelineYaml(quoted, 'p.yaml', { env: { OUT: 'o.jsonl' } }).spec?.steps[0]).toEqual({
      sink: { file: { path: 'o.jsonl' } },
    });
  });

  it('locates references in single- and double-quoted scalars with escapes before them', () => {
    const text = `version: 1
name: "a\\tb \${X}"
source: { file: { path: 'it''s \${Y}' } }
steps: [{ sink: { stdout: {} } }]
`;
    expect(issues(text, {})).toEqual([
      `${positionOf(text, '${X}')}: ${unset('X')}`,
      `${positionOf(text, '${Y}')}: ${unset('Y')}`,
    ]);
  });

  it('locates a reference on the second line of a folded plain scalar', () => {
    const text = `version: 1
name: t
source: { file: { path: in.jsonl } }
steps:
  - filter: event.a == 1 &&
      event.b == '\${B}'
`;
    expect(issues(text, {})).toEqual([`${positionOf(text, '${B}')}: ${unset('B')}`]);
  });

  it('locates a reference inside a block scalar, and substitutes there (a block scalar stays a string)', () => {
    const text = `version: 1
name: t
description: |
  first line
  then \${D} here
source: { file: { path: in.jsonl } }
steps: [{ sink: { stdout: {} } }]
`;
    expect(issues(text, {})).toEqual([`${positionOf(text, '${D}')}: ${unset('D')}`]);
    expect(parsePipelineYaml(text, 'p.yaml', { env: { D: '42' } }).spec?.description).toBe(
      'first line\nthen 42 here\n',
    );
  });

  it('reports a malformed or unclosed `${` at its position', () => {
    const text = `version: 1
name: t-\${bad name}
source: { file: { path: "\${PATH_NOT_CLOSED" } }
steps: [{ sink: { stdout: {} } }]
`;
    const found = issues(text, {});
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(new RegExp(`^${positionOf(text, '${bad')}: \`\\$\\{bad name\\}\` is not a reference`));
    expect(found[1]).toBe(
      `${positionOf(text, '${PATH_NOT')}: \`\${\` is not closed by \`}\` (write \`$\${\` for a literal \`\${\`)`,
    );
  });

  it('leaves keys alone (values only)', () => {
    const text = `version: 1
name: t
source: { file: { path: in.jsonl } }
steps:
  - map: { "\${K}": event.a }
`;
    const got = parsePipelineYaml(text, 'p.yaml', { env: { K: 'substituted' } });
    expect(got.issues).toEqual([]);
    expect(got.spec?.steps[0]).toEqual({ map: { '${K}': 'event.a' } });
  });

  it('substitutes an anchored value once, so its aliases carry the value too', () => {
    const text = `version: 1
name: &n \${N}
source: { file: { path: *n } }
steps: [{ sink: { file: { path: *n } } }]
`;
    const got = parsePipelineYaml(text, 'p.yaml', { env: { N: 'x.jsonl' } });
    expect(got.issues).toEqual([]);
    expect(got.spec?.name).toBe('x.jsonl');
    expect(got.spec?.source).toEqual({ file: { path: 'x.jsonl' } });
    expect(got.spec?.steps[0]).toEqual({ sink: { file: { path: 'x.jsonl' } } });
  });

  it('still places a later validation error at its source position, not shifted by the substitution', () => {
    const text = `version: 1
name: \${LONG_NAME_FOR_A_SHORT_VALUE}
source:
  file:
    path: in.jsonl
    batchSize: \${N}
steps: [{ sink: { stdout: {} } }]
`;
    const found = issues(text, { LONG_NAME_FOR_A_SHORT_VALUE: 'x', N: '0' });
    expect(found).toHaveLength(1);
    expect(found[0]).toBe(`${positionOf(text, '${N}')}: expected a number >= 1, got 0`);
    // And compile-time positions (`locate`) point at the source.
    const ok = parsePipelineYaml(text, 'p.yaml', { env: { LONG_NAME_FOR_A_SHORT_VALUE: 'x', N: '7' } });
    expect(ok.locate?.('/source/file/batchSize')).toEqual({
      line: Number(positionOf(text, '${N}').split(':')[0]),
      column: Number(positionOf(text, '${N}').split(':')[1]),
    });
  });

  it('an empty plain result is null, as YAML reads an empty plain scalar; quoted it is the empty string', () => {
    const text = `version: 1
name: t
description: \${D:-}
source: { file: { path: in.jsonl, shardId: "\${S:-}x" } }
steps: [{ sink: { stdout: {} } }]
`;
    const found = parsePipelineYaml(text, 'p.yaml', { env: {} });
    // `description` null is refused by the schema (a string is wanted), at the scalar.
    expect(found.issues.map((i) => `${i.line}:${i.column}`)).toEqual([positionOf(text, '${D:-}')]);
  });

  it('reads process.env by default, and checkPipelineFile takes the environment as an option', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-subst-'));
    const file = join(dir, 'p.yaml');
    const name = `TRIBUTARY_TEST_SUBST_${process.pid}`;
    await writeFile(file, `version: 1\nname: \${${name}}\nsource: { file: { path: in.jsonl } }\nsteps: []\n`);
    const missing = await checkPipelineFile(file, { env: {} });
    expect(missing.issues.map(formatIssue)).toEqual([`${file}:2:7: ${unset(name)}`]);
    const given = await checkPipelineFile(file, { env: { [name]: 'from-option' } });
    expect(given.issues).toEqual([]);
    expect(given.pipeline?.spec.name).toBe('from-option');
    process.env[name] = 'from-process';
    try {
      expect(parsePipelineYaml(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8'))).spec?.name).toBe(
        'from-process',
      );
    } finally {
      delete process.env[name];
    }
  });
});
