/** Error types of @tributary/sinks (each a `TributaryError` of @tributary/core; bad options are its `ConfigError`). */
import { TributaryError } from '@tributary/core/spi';

/** Thrown when records could not be made durable after every retry: the batch fails. */
export class SinkError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SinkError';
  }
}

/**
 * A record a sink cannot encode (a value with no JSON form, a Redis hash of a non-object): that
 * record goes to the dead-letter output, never retried, and the batch goes on.
 */
export class EncodeError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EncodeError';
  }
}
