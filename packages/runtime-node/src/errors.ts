/** The errors of `@tributary/runtime-node`. */
import { TributaryError } from '@tributary/core/spi';

/** The lease table could not be read or written (after retries), or it is not a lease table. */
export class LeaseTableError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LeaseTableError';
  }
}
