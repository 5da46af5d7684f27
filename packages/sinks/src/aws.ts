/**
 * Shared pieces of the AWS sinks: the region/endpoint schema fields are @tributary/aws's, as are
 * their clients (its factories; the SDK retries nothing: the sink retries itself); the batching
 * fields; the KMS key field.
 */
import { awsClientFields } from '@tributary/aws';
import Type from 'typebox';

export const awsFields = awsClientFields;

/**
 * A KMS key by id (`1234abcd-…`, `mrk-…`) or key ARN — not an alias: IAM grants the use of a key
 * on the key's ARN, so the role's statement names the key itself.
 */
export const kmsKeyIdField = (description: string) =>
  Type.Optional(
    Type.String({
      pattern: '^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\\d{12}:key/)?[A-Za-z0-9-]{1,256}$',
      description,
    }),
  );

export const batchSinkFields = {
  concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: 'calls in flight (default 4)' })),
  maxInFlightBytes: Type.Optional(
    Type.Integer({ minimum: 1024, description: 'bytes in flight before writes wait (default 8 MiB)' }),
  ),
  idField: Type.Optional(
    Type.String({ minLength: 1, description: 'add the record id (shard/sequence) to each object under this field' }),
  ),
};
