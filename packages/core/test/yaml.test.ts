import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPipelineFile, formatIssue, MAX_ALIASES, MAX_PIPELINE_BYTES, parsePipelineYaml } from '@tributary/core';
import { describe, expect, it } from 'vitest';

const head = 'version: 1\nname: t\nsource: { file: { path: in.jsonl } }\n';
const lines = (text: string) =>
  parsePipelineYaml(text, 'p.yaml').issues.map((i) => `${i.line}:${i.column}: ${i.message}`);

describe('YAML pipeline definitions', () => {
  it('accepts the documented shape', () => {
    const text = `${head}eventTime: event.ts
steps:
  - filter: event.type == "click"
  - map: { user: event.userId, amount: event.amount, ts: event.ts }
  - flatMap: event.items
  - enrich: { lookup: { static: { path: users.json } }, key: event.user, as: profile, onMissing: keep }
  - keyBy: event.user
  - branch: { routes: [ { when: event.amount > 100, steps: [ { sink: { file: { path: big.jsonl } } } ] } ] }
  - sink: { file: { path: out.jsonl } }
deadLetter: { file: { path: dead-letter.jsonl } }
`;
    const parsed = parsePipelineYaml(text, 'p.yaml');
    expect(parsed.issues).toEqual([]);
    expect(parsed.spec?.steps).toHaveLength(7);
  });

  it('reports every problem at once with file, line and column', () => {
    const text = `${head}steps:
  - filtr: event.type == "click"
  - map: { user: event.userId, amount: event.amount * }
  - enrich: { lookup: { static: { path: u.json, keyFeld: x } }, key: event.u, onMissing: maybe }
  - sink: { file: { path: 1 } }
  - keyBy: a
    map: b
fields: { a: strnig }
extra: 1
`;
    const issues = parsePipelineYaml(text, 'p.yaml').issues;
    expect(issues.every((i) => i.file === 'p.yaml')).toBe(true);
    expect(issues.map((i) => `${i.line}:${i.column}: ${i.message}`).sort()).toEqual(
      [
        '5:5: unknown step `filtr` (did you mean `filter`?); expected one of filter, map, flatMap, enrich, keyBy, branch, sink, window',
        '6:54: expression does not parse: Unexpected token: EOF',
        '7:49: unknown option `keyFeld` (did you mean `keyField`?); expected one of path, keyField',
        '7:90: expected one of "keep", "drop", "dead-letter", got "maybe"',
        '8:27: expected string, got integer',
        '10:5: a step has exactly one kind, found `keyBy` and `map`',
        '11:14: unknown field type `strnig` (did you mean `string`?); expected one of string, number, integer, boolean, object, array, timestamp, any (append ? for optional)',
        '12:1: unknown option `extra`; expected one of version, name, description, source, fields, eventTime, maxFutureSkew, steps, deadLetter',
        '9:12: expression is invalid: Unknown variable: a',
        '10:10: expression is invalid: Unknown variable: b',
      ].sort(),
    );
    expect(formatIssue(issues.find((i) => i.line === 5)!)).toBe(
      'p.yaml:5:5: unknown step `filtr` (did you mean `filter`?); expected one of filter, map, flatMap, enrich, keyBy, branch, sink, window',
    );
  });

  it('points an expression error at the offending character, in quoted and plain scalars', () => {
    expect(lines(`${head}steps:\n  - filter: event.a == )\n`)).toEqual([
      '5:24: expression does not parse: Unexpected token: RPAREN',
    ]);
    expect(lines(`${head}steps:\n  - filter: "event.a == )"\n`)).toEqual([
      '5:25: expression does not parse: Unexpected token: RPAREN',
    ]);
  });

  it('names missing options, wrong types, bad durations and bad names', () => {
    expect(
      lines(
        `${head}steps:\n  - enrich: { key: event.u, cache: { ttl: 5 minutes } }\n  - filter: 3\n  - sink: { file: {} }\n`,
      ).sort(),
    ).toEqual(
      [
        '5:13: missing required option `lookup`',
        '5:43: expected a duration such as 500ms, 30s, 5m or 1h, got "5 minutes"',
        '6:13: expected a CEL expression or { fn: "module.js#export" }, got integer',
        '7:19: missing required option `path`',
      ].sort(),
    );
    expect(lines('version: 2\nname: "bad name!"\nsource: { file: { path: x } }\nsteps: []\n').sort()).toEqual(
      ['1:10: expected 1, got 2', '2:7: expected pipeline name (letters, digits, _ . -), got "bad name!"'].sort(),
    );
    expect(lines('name: t\n')).toEqual([
      '1:1: missing required option `version`',
      '1:1: missing required option `source`',
      '1:1: missing required option `steps`',
    ]);
  });

  it('reports YAML syntax errors with their position', () => {
    const issues = parsePipelineYaml(`${head}steps:\n  - filter: [unclosed\n`, 'p.yaml').issues;
    expect(issues.length).toBeGreaterThan(0);
    expect(issues[0]).toMatchObject({ file: 'p.yaml', line: expect.any(Number), column: expect.any(Number) });
    expect(issues[0]?.line).toBeGreaterThanOrEqual(5);
  });

  describe('is safe on hostile input', () => {
    it('refuses __proto__ and constructor keys, and nothing is polluted', () => {
      const text = `${head}steps: []\n__proto__: { polluted: true }\nconstructor: { x: 1 }\n`;
      expect(lines(text)).toEqual(['5:1: key `__proto__` is not allowed', '6:1: key `constructor` is not allowed']);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('bounds aliases (a billion-laughs document is refused, not expanded)', () => {
      let text = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
      for (let i = 1; i < 10; i++)
        text += `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]\n`;
      const issues = parsePipelineYaml(text, 'p.yaml').issues;
      expect(issues).toHaveLength(1);
      expect(issues[0]?.message).toMatch(/alias/i);
      expect(MAX_ALIASES).toBeLessThan(1000);
    });

    it('refuses custom tags', () => {
      const issues = lines(`${head}steps:\n  - filter: !!js/function "function(){}"\n`);
      expect(issues).toHaveLength(1);
      expect(issues[0]).toMatch(/^5:13: tags are not allowed/);
    });

    it('refuses duplicate keys and oversize input', () => {
      expect(lines(`${head}name: again\nsteps: []\n`)[0]).toMatch(/^4:1: .*unique/i);
      const huge = `${head}steps: []\n#${'x'.repeat(MAX_PIPELINE_BYTES)}\n`;
      expect(lines(huge)).toEqual([`1:1: pipeline file is larger than ${MAX_PIPELINE_BYTES} bytes`]);
    });
  });

  describe('function references', () => {
    it('resolves `module#export` relative to the pipeline file and reports what is missing', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'trib-fn-'));
      await writeFile(
        join(dir, 'handlers.js'),
        'export const isClick = (e) => e.type === "click";\nexport const notFn = 3;\n',
      );
      const write = (steps: string) => writeFile(join(dir, 'p.yaml'), `${head}steps:\n${steps}`);
      await write('  - filter: { fn: ./handlers.js#isClick }\n');
      const ok = await checkPipelineFile(join(dir, 'p.yaml'));
      expect(ok.issues).toEqual([]);
      expect(typeof ok.pipeline?.bindings.get('./handlers.js#isClick')).toBe('function');

      await write(
        '  - filter: { fn: ./handlers.js#nope }\n  - map: { fn: ./handlers.js#notFn }\n  - keyBy: { fn: ./missing.js#k }\n',
      );
      const bad = await checkPipelineFile(join(dir, 'p.yaml'));
      expect(
        bad.issues.map((i) => `${i.line}:${i.column}: ${i.message.replace(/:.*Cannot find.*/, ': cannot find')}`),
      ).toEqual([
        '5:19: module `./handlers.js` has no exported function `nope`',
        '6:16: module `./handlers.js` has no exported function `notFn`',
        '7:18: cannot load module `./missing.js`: cannot find',
      ]);
    });
  });
});
