/** JSON text of a value for line-oriented outputs; bigints become strings, undefined becomes null. */
export function toJsonLine(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
  }
}
