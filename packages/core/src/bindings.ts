import { ConfigError } from './errors.js';

/**
 * The object the TypeScript builder bound under `name` (a `ref` in the spec), if `is` accepts it;
 * otherwise a ConfigError saying that no `what` (a sink, a lookup, a state store) is bound there.
 */
export function boundObject<T>(
  bindings: ReadonlyMap<string, unknown>,
  name: string,
  what: string,
  is: (value: unknown) => value is T,
): T {
  const value = bindings.get(name);
  if (!is(value)) throw new ConfigError(`no ${what} is bound under the name \`${name}\``);
  return value;
}
