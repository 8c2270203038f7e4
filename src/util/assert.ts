/**
 * Argument checks for caller mistakes (TypeError / RangeError) and strict
 * decoders for untrusted wire text. One helper per shape; messages name the
 * argument and the expected size, never its value.
 */

/** Throw unless `value` is a Uint8Array of exactly `length` bytes. */
export function assertBytes(value: unknown, length: number, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`"${name}" expected a Uint8Array`);
  if (value.length !== length) throw new RangeError(`"${name}" expected ${length} bytes, got ${value.length}`);
}

/** Throw unless `value` is an integer in [min, max]. */
export function assertInteger(value: unknown, min: number, max: number, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(`"${name}" expected an integer`);
  if (value < min || value > max) throw new RangeError(`"${name}" expected ${min}..${max}, got ${value}`);
}

// A single character class, so matching never backtracks or grows a stack on large input.
const NON_HEX_RE = /[^0-9a-f]/;

/**
 * Decode lowercase hex of an exact byte length (or any length when
 * `length` is undefined). Returns undefined on anything else: uppercase,
 * odd length, stray characters. The caller maps that to its own error code.
 */
export function decodeHex(text: unknown, length?: number): Buffer | undefined {
  if (typeof text !== 'string') return undefined;
  if (length !== undefined && text.length !== length * 2) return undefined;
  if (text.length % 2 !== 0 || NON_HEX_RE.test(text)) return undefined;
  return Buffer.from(text, 'hex');
}

/** True when `value` is a plain JSON object whose keys are exactly `required` plus any of `optional`. */
export function hasExactKeys(value: unknown, required: readonly string[], optional: readonly string[] = []): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  for (const k of required) if (!Object.prototype.hasOwnProperty.call(value, k)) return false;
  for (const k of keys) if (!required.includes(k) && !optional.includes(k)) return false;
  return true;
}
