/**
 * Built-in window state stores: `memory` (process memory, the default) and `ref` (a store object
 * supplied in TypeScript). DynamoDB and Redis come from `@tributary/state`.
 */
import Type from 'typebox';
import { boundObject } from '../bindings.js';
import type { StoreDefinition } from '../compile/types.js';
import { register } from '../registry.js';
import { isStateStore } from '../windows/shared.js';

declare module '../index.js' {
  interface StoreKinds {
    memory: { volatile?: boolean };
    ref: string;
  }
}

export const memoryStoreDefinition: StoreDefinition<{ volatile?: boolean }> = register({
  kind: 'memory',
  category: 'store',
  module: './stores/memory.js',
  schema: Type.Object(
    {
      volatile: Type.Optional(
        Type.Boolean({
          description:
            'accept that state is lost with the process: required to run windows in memory in AWS Lambda, whose containers end at any time (default false)',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  description:
    'Window state in process memory (the default): fastest, and lost when the process ends. One process must see every shard that feeds a window. In AWS Lambda a container ends at any time, so a window there needs a shared store (dynamodb, redis) unless it opts in with `{ memory: { volatile: true } }`.',
  summary: () => 'memory',
  create: () => undefined,
});

export const refStoreDefinition: StoreDefinition<string> = register({
  kind: 'ref',
  category: 'store',
  module: './stores/memory.js',
  schema: Type.String({ minLength: 1, description: 'name of a state store bound by the TypeScript builder' }),
  description: 'A state store object supplied in TypeScript (`state: dynamoDbState({...})` binds it).',
  summary: (name) => name,
  create: (name, ctx) => boundObject(ctx.bindings, name, 'state store', isStateStore),
});
