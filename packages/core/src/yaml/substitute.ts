// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` in plain strings is the syntax this file is about
/**
 * `${NAME}` and `${NAME:-default}` in a YAML pipeline's values, replaced from an environment
 * before the pipeline is validated, so that one file serves every environment.
 *
 * - Only values are substituted, never keys (a key's `${` stays as written).
 * - A name is `[A-Za-z_][A-Za-z0-9_]*`. `${NAME:-default}` takes `default` when NAME is unset or
 *   empty (as a shell does); the default is the text up to the first `}` and holds no reference.
 * - `$${` is a literal `${` (a `$` not followed by `{` is just a `$`: `$NAME` is not a reference).
 * - The substitution is on the scalar's text; a plain (unquoted) scalar is then typed again as
 *   YAML types a plain scalar: `batchSize: ${N}` with N=500 is the number 500, `${FLAG}` with
 *   FLAG=true the boolean, an empty result null. A quoted scalar stays a string.
 * - In a flow collection (`{ a: b }`, `[a, b]`) `{` and `}` end a plain scalar, so a reference
 *   there must be quoted (then it is a string) or the collection written in block style; the
 *   loader says so (see `unquotedInFlow`).
 * - An unset name without a default, an unclosed `${` or a malformed reference is an issue at
 *   the line and column of its `${` (at the scalar's start where the scalar's text cannot be
 *   matched to its source, e.g. a double-quoted escape that spells `${`); every one is reported.
 *
 * The syntax tree is changed in place (scalar values only), so every node keeps its source range
 * and later issues are still located in the original text.
 */
import { type Document, isPair, isScalar, isSeq, type LineCounter, type Node, type Scalar, Schema, visit } from 'yaml';
import type { ValidationIssue } from '../errors.js';
import { escapePointer } from '../validate.js';

/** Where substituted values come from: `process.env`, or the CLI's merge of it and `--env-file`s. */
export type Environment = Readonly<Record<string, string | undefined>>;

const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/** A problem with one reference: `index` is the position of its `${` in the scalar's value. */
export interface ReferenceProblem {
  index: number;
  message: string;
}

/** The result of substituting one string. */
export interface Substituted {
  text: string;
  /** Whether the text holds a reference or an escape (else `text` is the input unchanged). */
  changed: boolean;
  problems: ReferenceProblem[];
}

const shown = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s).replace(/\n/g, '\\n');

/** Replaces the references in `value` from `env` (see the module's comment for the syntax). */
export function substituteString(value: string, env: Environment): Substituted {
  if (!value.includes('${')) return { text: value, changed: false, problems: [] };
  let out = '';
  const problems: ReferenceProblem[] = [];
  let i = 0;
  while (i < value.length) {
    const at = value.indexOf('${', i);
    if (at === -1) {
      out += value.slice(i);
      break;
    }
    if (at > 0 && value[at - 1] === '$' && at - 1 >= i) {
      // `$${` is a literal `${`.
      out += `${value.slice(i, at - 1)}\${`;
      i = at + 2;
      continue;
    }
    out += value.slice(i, at);
    const close = value.indexOf('}', at + 2);
    if (close === -1) {
      problems.push({ index: at, message: '`${` is not closed by `}` (write `$${` for a literal `${`)' });
      out += value.slice(at);
      break;
    }
    const inner = value.slice(at + 2, close);
    const match = REFERENCE.exec(inner);
    if (!match) {
      problems.push({
        index: at,
        message: `\`\${${shown(inner)}}\` is not a reference: write \${NAME} or \${NAME:-default}, NAME of letters, digits and _ not starting with a digit (write \`$\${\` for a literal \`\${\`)`,
      });
      i = close + 1;
      continue;
    }
    const [, name = '', fallback] = match;
    if (fallback?.includes('${')) {
      problems.push({
        index: at,
        message: `a default cannot hold a reference (references do not nest): \`\${${shown(inner)}}\``,
      });
      i = close + 1;
      continue;
    }
    const given = Object.hasOwn(env, name) ? env[name] : undefined;
    if (fallback !== undefined) out += given === undefined || given === '' ? fallback : given;
    else if (given === undefined)
      problems.push({
        index: at,
        message: `\${${name}} is not set (give it in the environment or --env-file, or write \${${name}:-default})`,
      });
    else out += given;
    i = close + 1;
  }
  return { text: out, changed: true, problems };
}

const coreScalarTags = new Schema({ schema: 'core' }).tags.filter(
  (t): t is typeof t & { test: RegExp; resolve: (s: string, e: (m: string) => void, o: object) => unknown } =>
    'test' in t && t.test instanceof RegExp && typeof t.resolve === 'function',
);

/** `text` typed as YAML's core schema types a plain scalar: null, a boolean, a number, else the string. */
export function plainScalarValue(text: string): unknown {
  for (const tag of coreScalarTags) {
    if (!tag.test.test(text)) continue;
    let failed = false;
    const value = tag.resolve(
      text,
      () => {
        failed = true;
      },
      { intAsBigInt: false },
    );
    if (!failed) return isScalar(value) ? value.value : value;
  }
  return text;
}

/** Every index of `needle` in `s`. */
function indicesOf(s: string, needle: string): number[] {
  const out: number[] = [];
  for (let i = s.indexOf(needle); i !== -1; i = s.indexOf(needle, i + 1)) out.push(i);
  return out;
}

/** The JSON pointer of a node from the ancestors `visit` gives. */
function pointerOf(ancestors: readonly unknown[], node: unknown): string {
  let pointer = '';
  for (let i = 0; i < ancestors.length; i++) {
    const a = ancestors[i];
    if (isPair(a) && isScalar(a.key)) pointer += `/${escapePointer(String(a.key.value))}`;
    else if (isSeq(a)) pointer += `/${a.items.indexOf((ancestors[i + 1] ?? node) as never)}`;
  }
  return pointer;
}

/**
 * Substitutes the references in every value scalar of `doc` (of source `text`) from `env`.
 * Returns the issues (located) and the scalars whose value changed (an offset into such a
 * scalar's value no longer matches its source).
 */
export function substituteDocument(
  doc: Document,
  text: string,
  lineCounter: LineCounter,
  file: string,
  env: Environment,
): { issues: ValidationIssue[]; substituted: WeakSet<Node> } {
  const issues: ValidationIssue[] = [];
  const substituted = new WeakSet<Node>();
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string') return;
      const value = node.value;
      const result = substituteString(value, env);
      if (!result.changed) return;
      if (result.problems.length > 0) {
        const place = sourceOffsets(node, value, text);
        for (const p of result.problems) {
          const offset = place(p.index);
          const pos = lineCounter.linePos(offset);
          issues.push({
            file,
            line: pos.line,
            column: pos.col,
            path: pointerOf(ancestors, node),
            message: p.message,
          });
        }
        return;
      }
      substituted.add(node);
      (node as Scalar<unknown>).value =
        node.type === 'PLAIN' && !node.tag ? plainScalarValue(result.text) : result.text;
    },
  });
  return { issues, substituted };
}

/**
 * Maps an index of `${` in a scalar's value to its offset in the source: the k-th `${` of the
 * value is the k-th of the scalar's source text when both have as many (escapes and folding
 * neither add nor remove one); otherwise the scalar's start.
 */
function sourceOffsets(node: Scalar, value: string, text: string): (index: number) => number {
  const [start = 0, end = start] = node.range ?? [];
  const inValue = indicesOf(value, '${');
  const inSource = indicesOf(text.slice(start, end), '${');
  return (index) => {
    const k = inValue.indexOf(index);
    return inValue.length === inSource.length && k !== -1 ? start + (inSource[k] as number) : start;
  };
}

/**
 * The offsets of `${` where YAML's parser reported an error at the `{`: a reference in a plain
 * scalar inside a flow collection, where `{` is an indicator. `errorOffsets` are the errors'.
 */
export function unquotedInFlow(text: string, errorOffsets: readonly number[]): number[] {
  return [...new Set(errorOffsets.filter((o) => o > 0 && text[o] === '{' && text[o - 1] === '$').map((o) => o - 1))];
}

/** The message for a reference at one of {@link unquotedInFlow}'s offsets. */
export const UNQUOTED_IN_FLOW =
  'a ${...} inside a flow collection ({ } or [ ]) must be quoted, e.g. "${NAME}" (a quoted value stays a string), or the collection written in block style (one key per line)';
