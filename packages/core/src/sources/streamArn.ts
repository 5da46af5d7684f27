/** Stream ARNs and names of the stream sources (no registration here: spi and runtimes import it). */

/** A Kinesis stream ARN, `arn:<partition>:kinesis:<region>:<account>:stream/<name>`. */
export const KINESIS_STREAM_ARN = '^arn:aws(-[a-z]+)*:kinesis:[a-z0-9-]+:\\d{12}:stream/[a-zA-Z0-9_.-]{1,128}$';
/** A DynamoDB stream ARN, `arn:<partition>:dynamodb:<region>:<account>:table/<table>/stream/<label>`. */
export const DYNAMODB_STREAM_ARN =
  '^arn:aws(-[a-z]+)*:dynamodb:[a-z0-9-]+:\\d{12}:table/[A-Za-z0-9_.-]{3,255}/stream/.+$';

/** The stream a `kinesis` source names, by name (from its ARN when it gives one). */
export function kinesisStreamName(spec: { stream?: string; streamArn?: string }): string | undefined {
  return spec.stream ?? spec.streamArn?.slice(spec.streamArn.lastIndexOf('/') + 1);
}
