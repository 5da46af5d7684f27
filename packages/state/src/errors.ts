/** Error types of @tributary/state. Back-end errors are translated here, at the store boundary. */
import { ConfigError, TributaryError } from '@tributary/core/spi';

/** The state store could not be reached or refused a request after every retry: the batch fails and is retried. */
export class StateStoreError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateStoreError';
  }
}

/**
 * Invalid store options (thrown at construction, before any record is read). A `ConfigError`, so a
 * pipeline's compile reports it at the store's spec.
 */
export class StateConfigError extends ConfigError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateConfigError';
  }
}
