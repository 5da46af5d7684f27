/** Error types of @tributary/cli (each a `TributaryError` of @tributary/core). */
import { TributaryError } from '@tributary/core';

/**
 * A command line that cannot be run as given: a flag's value out of range, a flag the pipeline
 * cannot take. The command prints the message and exits with the usage status (64).
 */
export class UsageError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}
