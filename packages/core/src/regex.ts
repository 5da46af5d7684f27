/**
 * Regular expressions in CEL expressions (`s.matches(re)`, `matches(s, re)`) run on RE2 (re2js,
 * a pure-JavaScript port): matching takes time linear in the input, whatever the pattern, so no
 * record can stall a shard with catastrophic backtracking. This is also the syntax the CEL
 * specification prescribes. RE2 has no backreferences (`\1`) and no lookaround (`(?=`, `(?!`,
 * `(?<=`, `(?<!`); a pattern using them is refused as invalid.
 *
 * `matches` is a search (as in CEL and RE2's `PartialMatch`): anchor with `^…$` for a whole match.
 */
import { LRUCache } from 'lru-cache';
import { RE2JS } from 're2js';
import { ExpressionError } from './errors.js';

/** Longest pattern accepted (the longest CEL expression is 4096 characters). */
export const MAX_REGEX_LENGTH = 4096;
/** Largest compiled RE2 program accepted; matching costs about input length × program size. */
export const MAX_REGEX_PROGRAM_SIZE = 5000;

/** A compiled pattern, or why it cannot be compiled. */
type Compiled = RE2JS | { error: string };

// Patterns from records (`s.matches(event.pattern)`) are compiled on first use and kept; invalid
// ones are remembered too, so a stream of bad patterns costs one compilation each.
const cache = new LRUCache<string, Compiled>({ max: 1000 });

function compile(pattern: string): Compiled {
  if (pattern.length > MAX_REGEX_LENGTH) {
    return { error: `regular expression is longer than ${MAX_REGEX_LENGTH} characters` };
  }
  try {
    const re = RE2JS.compile(pattern);
    if (re.programSize() > MAX_REGEX_PROGRAM_SIZE) {
      return { error: `regular expression is too large (more than ${MAX_REGEX_PROGRAM_SIZE} RE2 instructions)` };
    }
    return re;
  } catch (err) {
    return { error: `invalid regular expression ${JSON.stringify(pattern)}: ${regexReason(err)}` };
  }
}

function regexReason(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  // re2js: "error parsing regexp: missing closing ): `(`"
  return m.replace(/^error parsing regexp: /, '');
}

function compiled(pattern: string): Compiled {
  let c = cache.get(pattern);
  if (c === undefined) {
    c = compile(pattern);
    cache.set(pattern, c);
  }
  return c;
}

/** Why `pattern` is not a valid RE2 pattern for expressions, or undefined when it is. */
export function regexProblem(pattern: string): string | undefined {
  const c = compiled(pattern);
  return c instanceof RE2JS ? undefined : c.error;
}

/** True when `pattern` matches somewhere in `text` (RE2 semantics, linear time); throws {@link ExpressionError} for an invalid pattern. */
export function regexMatches(text: string, pattern: string): boolean {
  const c = compiled(pattern);
  if (!(c instanceof RE2JS)) throw new ExpressionError(c.error, undefined);
  return c.test(text);
}
