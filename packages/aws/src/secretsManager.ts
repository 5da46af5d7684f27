/** A Secrets Manager client with Tributary's configuration (see `awsClientConfig`), and reading one secret's text. */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { type AwsClientOptions, awsClientConfig } from './config.js';
import { SecretValueError } from './errors.js';

export function secretsManagerClient(options: AwsClientOptions = {}): SecretsManagerClient {
  return new SecretsManagerClient(awsClientConfig({ service: 'SECRETS_MANAGER', ...options }));
}

/**
 * The text of a secret (its `SecretString`, current version), by name or ARN: one
 * GetSecretValue call. Throws the SDK's error as it is (its name says whether it is worth
 * retrying: `ResourceNotFoundException`, `AccessDeniedException`, …), or an error if the secret
 * holds binary data only. The value is never part of an error message.
 */
export async function secretString(
  id: string,
  options: AwsClientOptions & { client?: SecretsManagerClient } = {},
): Promise<string> {
  const client = options.client ?? secretsManagerClient(options);
  try {
    const res = await client.send(new GetSecretValueCommand({ SecretId: id }));
    if (typeof res.SecretString !== 'string') {
      throw new SecretValueError(`secret ${id} has no text value (SecretString); binary secrets are not supported`);
    }
    return res.SecretString;
  } finally {
    if (!options.client) client.destroy();
  }
}
