/** Error types of @tributary/runtime-lambda (each a `TributaryError` of @tributary/core). */
import { TributaryError } from '@tributary/core/spi';

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

/**
 * A record of the event that cannot be read — a malformed KPL aggregate, an AttributeValue that
 * is not one: the record goes to the dead-letter output (reason `decode`); the batch goes on.
 */
export class RecordFormatError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RecordFormatError';
  }
}

/** A malformed attribute value of a DynamoDB Streams image; `path` names where it is. */
export class AttributeError extends RecordFormatError {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'AttributeError';
  }
}
