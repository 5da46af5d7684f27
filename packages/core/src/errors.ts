/**
 * Error types of @tributary/core. Every error thrown by Tributary is a {@link TributaryError};
 * subclasses set `name` and keep the underlying error as `cause`.
 */

/** A problem found in a pipeline definition, located in its source file when there is one. */
export interface ValidationIssue {
  /** File the definition came from (absent for pipelines built in TypeScript). */
  file?: string;
  /** 1-based line, when the definition came from YAML. */
  line?: number;
  /** 1-based column, when the definition came from YAML. */
  column?: number;
  /** JSON pointer-like path inside the definition, e.g. `/steps/2/filter`. */
  path: string;
  message: string;
}

/** Formats an issue as `file:line:column: message` (what `tributary validate` prints). */
export function formatIssue(issue: ValidationIssue): string {
  const where = issue.file ?? '<pipeline>';
  const pos = issue.line === undefined ? '' : `:${issue.line}:${issue.column ?? 1}`;
  const at = issue.line === undefined && issue.path ? ` (at ${issue.path})` : '';
  return `${where}${pos}: ${issue.message}${at}`;
}

export class TributaryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TributaryError';
  }
}

/** An invalid pipeline definition. Thrown before any record is read. */
export class PipelineValidationError extends TributaryError {
  readonly issues: readonly ValidationIssue[];
  constructor(issues: readonly ValidationIssue[], options?: { cause?: unknown }) {
    super(
      `Invalid pipeline (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${issues.map(formatIssue).join('\n')}`,
      options,
    );
    this.name = 'PipelineValidationError';
    this.issues = issues;
  }
}

/** An expression that does not parse or type-check. */
export class ExpressionError extends TributaryError {
  /** 0-based offset of the problem inside the expression text, when known. */
  readonly offset: number | undefined;
  constructor(message: string, offset: number | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExpressionError';
    this.offset = offset;
  }
}

/** A bad option passed to a constructor or factory. */
export class ConfigError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

/** A sink or lookup that failed in a way the batch cannot recover from; the batch is not acknowledged. */
export class DeliveryError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DeliveryError';
  }
}

/**
 * A broken invariant inside Tributary: a bug, never the pipeline's or the input's fault. The
 * message says what was expected; report it with the pipeline that caused it.
 */
export class InternalError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InternalError';
  }
}

/**
 * A batch stopped because its source said it may no longer write (`SourceBatch.mayWrite`: the
 * worker's lease on the shard is no longer fresh): what it had not yet written, it never writes.
 */
export class FencedError extends TributaryError {
  readonly shardId: string;
  constructor(shardId: string) {
    super(`shard ${shardId}: the batch may no longer write (its lease is not held): stopped before writing`);
    this.name = 'FencedError';
    this.shardId = shardId;
  }
}

/** A pipeline file, or a module it names, that cannot be read (reported as a validation issue). */
export class PipelineFileError extends TributaryError {
  /** The file system's code when the reason is one (e.g. `EISDIR`). */
  readonly code: string | undefined;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options);
    this.name = 'PipelineFileError';
    this.code = options?.code;
  }
}

/** An output that cannot be opened: in use by another run, or its directory cannot be made. */
export class OutputError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OutputError';
  }
}

/** Why a record could not be decoded (its message is the dead letter's `error`; the batch goes on). */
export class DecodeProblem extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DecodeProblem';
  }
}

/**
 * Thrown inside the expression evaluator when one record's evaluation exceeds its comprehension
 * steps; the expression reports it as an {@link ExpressionError}.
 */
export class BudgetExceeded extends TributaryError {
  constructor() {
    super('expression step budget exceeded');
    this.name = 'BudgetExceeded';
  }
}

/** A KPL aggregate whose protobuf does not parse: the data is not an aggregate after all. */
export class MalformedAggregate extends TributaryError {
  constructor(message: string) {
    super(`KPL aggregate: ${message}`);
    this.name = 'MalformedAggregate';
  }
}

/** Short human text for any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}

const TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'TransactionInProgressException',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'MaxRetriesPerRequestError',
]);
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EAI_AGAIN']);
const TRANSIENT_MESSAGE =
  /Connection is closed|connect ECONNREFUSED|socket hang up|LOADING|TRYAGAIN|CLUSTERDOWN|READONLY|MASTERDOWN|Stream isn't writeable|ECONNRESET/;

/**
 * Whether a failure is worth retrying: throttling, a dropped or refused connection, a timeout, a
 * server error or a restarting server — as the AWS SDK, Node's network stack and ioredis report
 * them (recognised by name, code, HTTP status or message; core imports none of them).
 */
export function isTransient(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as {
    name?: string;
    code?: string;
    message?: string;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  if (e.$retryable) return true;
  if (e.name !== undefined && TRANSIENT_NAMES.has(e.name)) return true;
  if (e.code !== undefined && TRANSIENT_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  return typeof e.message === 'string' && TRANSIENT_MESSAGE.test(e.message);
}
