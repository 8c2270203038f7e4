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
/** Below this many characters the regex is cheapest; above it, decoding first is (5x at 2 KiB, 5x at 2 MiB). */
const HEX_REGEX_MAX_CHARS = 256;
const UPPERCASE_HEX_DIGITS = ['A', 'B', 'C', 'D', 'E', 'F'];

/**
 * Decode lowercase hex of an exact byte length (or any length when
 * `length` is undefined). Returns undefined on anything else: uppercase,
 * odd length, stray characters. The caller maps that to its own error code.
 */
export function decodeHex(text: unknown, length?: number): Buffer | undefined {
  if (typeof text !== 'string') return undefined;
  if (length !== undefined && text.length !== length * 2) return undefined;
  if (text.length % 2 !== 0) return undefined;
  if (text.length <= HEX_REGEX_MAX_CHARS) return NON_HEX_RE.test(text) ? undefined : Buffer.from(text, 'hex');
  // Long input: a regex costs ~4 ns per character, five times the decoding
  // itself. Instead, in this order:
  // 1. ASCII only (UTF-8 length = UTF-16 length). Required before decoding:
  //    Node's hex decoder truncates UTF-16 code units to their low byte, so
  //    "\u0161" would read as the digit "a".
  if (Buffer.byteLength(text, 'utf8') !== text.length) return undefined;
  // 2. Node's decoder stops at the first pair that is not [0-9a-fA-F]
  //    (documented truncation), so a full-length result means every
  //    character is a hex digit of either case...
  const bytes = Buffer.from(text, 'hex');
  if (bytes.length * 2 !== text.length) return undefined;
  // 3. ...and none is uppercase (six memchr scans).
  for (const digit of UPPERCASE_HEX_DIGITS) if (text.includes(digit)) return undefined;
  return bytes;
}

/** True when `value` is a plain JSON object whose keys are exactly `required` plus any of `optional`. */
export function hasExactKeys(value: unknown, required: readonly string[], optional: readonly string[] = []): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  for (const k of required) if (!Object.prototype.hasOwnProperty.call(value, k)) return false;
  for (const k of keys) if (!required.includes(k) && !optional.includes(k)) return false;
  return true;
}

/**
 * Throw unless every own key of `options` is one of `known` (an object whose
 * keys are the option names; `satisfies Record<keyof Options, true>` at the
 * definition keeps it in step with the interface). A misspelt option is a
 * mistake to report at the call site, not a setting to ignore: an ignored
 * `enableEncryption` or limit silently leaves the default in force.
 * @param owner what takes the options, for the message (e.g. `EncryptedWebSocketServer`).
 * @throws TypeError naming the first unknown option; also when `options` is not an object.
 */
export function assertKnownOptions(options: unknown, known: Readonly<Record<string, true>>, owner: string): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TypeError(`${owner} expected an options object`);
  for (const key of Object.keys(options)) {
    if (!Object.prototype.hasOwnProperty.call(known, key)) throw new TypeError(`${owner}: unknown option ${JSON.stringify(key)}`);
  }
}

/**
 * The `peers` object of a local JSON file of the shape `{"version": V,
 * "peers": {...}}` (known peers, the peer registry), strictly: nothing else
 * at the top, the expected version, an object (not an array) of entries.
 * @throws whatever `corrupt(why)` makes, for any departure.
 */
export function decodeVersionedPeers(text: string, version: number, corrupt: (why: string) => Error): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw corrupt('not valid JSON');
  }
  if (!hasExactKeys(doc, ['version', 'peers']) || doc.version !== version) throw corrupt('unexpected fields or version');
  const peers = doc.peers;
  if (typeof peers !== 'object' || peers === null || Array.isArray(peers)) throw corrupt('peers is not an object');
  return peers as Record<string, unknown>;
}
