/**
 * `tributary state init <pipeline.yaml>`: creates what the pipeline's window state needs before
 * the first run — a DynamoDB table (pk/sk, on-demand, TTL on `ttl`) per `dynamodb` store. Redis
 * needs nothing created (keys appear on first write). Safe to run again.
 */
import type { PipelineSpec } from '@tributary/core';
import { createStateTable, dynamoDbClient, stateStoresOf } from '@tributary/state';

/** Creates the stores' tables; returns one line per store. */
export async function initState(spec: PipelineSpec): Promise<string[]> {
  const lines: string[] = [];
  const stores = stateStoresOf(spec);
  if (stores.length === 0) return ['no window keeps its state outside the process: nothing to create'];
  for (const { path, store } of stores) {
    if ('dynamodb' in store) {
      const { table, region, endpoint } = store.dynamodb;
      const client = dynamoDbClient({ region, endpoint });
      try {
        const result = await createStateTable(client, table);
        lines.push(
          `${path}: dynamodb table ${table}: ${result === 'created' ? 'created' : 'already exists'} (TTL on \`ttl\`)`,
        );
      } finally {
        client.destroy();
      }
    } else if ('redis' in store) {
      lines.push(`${path}: redis: nothing to create (keys are created on first write)`);
    } else {
      lines.push(`${path}: ${Object.keys(store)[0]}: nothing to create`);
    }
  }
  return lines;
}
