/** The errors of `@tributary/runtime-node`. */
import { TributaryError } from '@tributary/core/spi';

/** The lease table could not be read or written (after retries), or it is not a lease table. */
export class LeaseTableError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LeaseTableError';
  }
}

/** Reading stopped (`ShardReader.stop()`, or the shard read to its end): what a pending read rejects with. */
export class ReaderStopped extends TributaryError {
  constructor(message = 'reading stopped') {
    super(message);
    this.name = 'ReaderStopped';
  }
}

/** The stream's enhanced fan-out consumer could not be registered or did not become ACTIVE. */
export class StreamConsumerError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreamConsumerError';
  }
}
