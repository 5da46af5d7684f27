import type { DeadLetterReason } from '../envelope.js';
import { ExpressionError } from '../errors.js';

/** Dead-letter reason for an error thrown while evaluating user logic. */
export function evaluationReason(err: unknown): DeadLetterReason {
  return err instanceof ExpressionError ? 'expression' : 'function';
}

/** Short text of an expression source for `describe()`. */
export function showExpression(e: string | { fn: string }): string {
  return typeof e === 'string' ? e : `fn ${e.fn}`;
}
