/** The errors of `@tributary/aws` (it depends on no other Tributary package, so they are its own). */

/** A problem with a Redis component's connection settings (the message names the setting). */
export class RedisConnectionError extends Error {
  /** Set when trying again may succeed (the mark the AWS SDK gives its retryable errors). */
  readonly $retryable?: { throttling: boolean };
  constructor(message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options);
    this.name = 'RedisConnectionError';
    if (options?.retryable) this.$retryable = { throttling: false };
  }
}

/** A secret that cannot be used as it is (binary only, …); the value is never in the message. */
export class SecretValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretValueError';
  }
}
