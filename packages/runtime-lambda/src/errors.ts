/** Error types of @tributary/runtime-lambda (each a `TributaryError` of @tributary/core). */
import { TributaryError } from '@tributary/core';

/**
 * An event the handler cannot read at all: not a Kinesis or DynamoDB Streams event (an SQS, S3 or
 * SNS event, an object without `Records`, not an object) — a misconfigured trigger. The
 * invocation fails and nothing is written. (A malformed record inside a Kinesis or DynamoDB
 * Streams event is not refused: it goes to the dead-letter output.)
 */
export class LambdaEventError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LambdaEventError';
  }
}
