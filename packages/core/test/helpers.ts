import { readFile } from 'node:fs/promises';
import { type Pipeline, parsePipelineYaml } from '@tributary/core';
import { expect } from 'vitest';
import { ExpressionError } from '../src/errors.js';

/** A pipeline from YAML text (steps only need to be given; a file source is filled in). */
export function yamlPipeline(text: string, baseDir = process.cwd()): Pipeline {
  const parsed = parsePipelineYaml(text, 'test.yaml');
  if (!parsed.spec) throw new Error(parsed.issues.map((i) => `${i.line}:${i.column}: ${i.message}`).join('\n'));
  return { spec: parsed.spec, bindings: new Map(), baseDir };
}

/** A pipeline whose steps are the given YAML list items. */
export function stepsPipeline(steps: string, extra = ''): Pipeline {
  return yamlPipeline(`version: 1\nname: test\nsource: { file: { path: in.jsonl } }\n${extra}steps:\n${steps}\n`);
}

/** A pipeline run in `dir` that copies in.jsonl to out.jsonl, its dead letters to dead.jsonl. */
export const fileCopyPipeline = (name: string, dir: string): Pipeline =>
  yamlPipeline(
    `version: 1\nname: ${name}\nsource: { file: { path: in.jsonl } }\nsteps:\n  - sink: { file: { path: out.jsonl } }\ndeadLetter: { file: { path: dead.jsonl } }\n`,
    dir,
  );

/** The JSON values of a file's lines. */
export const jsonLinesOf = async (path: string): Promise<unknown[]> =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

/** Runs `f` and returns the ExpressionError it threw (or fails the test). */
export function expressionErrorOf(f: () => unknown): ExpressionError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ExpressionError);
    return err as ExpressionError;
  }
  return expect.unreachable('expected an ExpressionError');
}
