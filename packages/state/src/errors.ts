/** Error types of @tributary/state. Back-end errors are translated here, at the store boundary. */
import { TributaryError } from '@tributary/core';

/** The state store could not be reached or refused a request after every retry: the batch fails and is retried. */
export class StateStoreError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateStoreError';
  }
}

/** Invalid store options (thrown at construction, before any record is read). */
export class StateConfigError extends TributaryError {
  constructor(message: string) {
    super(message);
    this.name = 'StateConfigError';
  }
}
