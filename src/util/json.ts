/**
 * Where a text stops being JSON (RFC 8259 §2-7), for telling a person which
 * line and column of a file they wrote is wrong. `JSON.parse` says where
 * only for some mistakes, and the wording changes between Node versions
 * (`Unexpected token 'x', "..." is not valid JSON` has no position, and
 * quotes the file). The scanner only locates: `JSON.parse` still builds the
 * value, from a text the scanner has passed.
 *
 * One rule beyond RFC 8259: a name given twice in one object is refused
 * (the RFC says names SHOULD be unique; `JSON.parse` silently keeps the
 * last, so a file that sets an option twice would not do what it says).
 */
import { escapeControlCharacters } from './text.js';

/** Deepest nesting scanned (levels of objects and arrays); files meant for people need a few. */
export const MAX_JSON_DEPTH = 32;

/** A place in a text: offset in UTF-16 code units, 1-based line and column. */
export interface JsonSyntaxError {
  offset: number;
  line: number;
  column: number;
  /** What is wrong there, e.g. `expected ',' or '}' after a property value`. */
  reason: string;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERAL = /true|false|null/y;
const HEX4 = /[0-9a-fA-F]{4}/y;

class Stop {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {}
}

/** `text` quoted as JSON and safe to print (for names and values in messages), its first 64 characters (then `...`). */
export function quoteForMessage(text: string): string {
  // Cut before quoting, so that no escape is cut in half.
  const q = escapeControlCharacters(JSON.stringify(text.length > 64 ? text.slice(0, 64) : text));
  return text.length > 64 ? `${q.slice(0, -1)}..."` : q;
}

/**
 * The first place where `text` is not JSON, or undefined when it is JSON
 * (with no name twice in one object, nested at most MAX_JSON_DEPTH deep).
 * Never throws; linear in the length of `text`.
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  let i = 0;
  const fail = (reason: string, at = i): never => {
    throw new Stop(at, reason);
  };
  const space = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const match = (re: RegExp): boolean => {
    re.lastIndex = i;
    if (!re.test(text)) return false;
    i = re.lastIndex;
    return true;
  };
  const string = (): string => {
    const start = i++;
    for (;;) {
      if (i >= text.length) fail('a string that is never closed starts here', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail('a control character in a string (write it as an escape, e.g. \\n or \\u0009)');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      const e = text[i + 1];
      if (e === 'u') {
        i += 2;
        if (!match(HEX4)) fail('\\u needs four hex digits', i - 2);
      } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
      else fail('not an escape JSON has (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (depth: number): void => {
    space();
    if (i >= text.length) fail('the text ends where a value was expected');
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= MAX_JSON_DEPTH) fail(`nested more than ${MAX_JSON_DEPTH} deep`);
      const close = c === '{' ? '}' : ']';
      const names = c === '{' ? new Set<string>() : undefined;
      i++;
      space();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (names) {
          space();
          if (text[i] !== '"') fail(i >= text.length ? 'the text ends inside an object' : 'expected a property name in double quotes');
          const at = i;
          const name = string();
          if (names.has(name)) fail(`${quoteForMessage(name)} is given twice in this object`, at);
          names.add(name);
          space();
          if (text[i] !== ':') fail("expected ':' after a property name");
          i++;
        }
        value(depth + 1);
        space();
        if (text[i] === close) {
          i++;
          return;
        }
        if (text[i] !== ',') fail(names ? "expected ',' or '}' after a property value" : "expected ',' or ']' after an array element");
        i++;
      }
    }
    if (c === '"') {
      string();
      return;
    }
    if (match(NUMBER) || match(LITERAL)) return;
    fail("expected a value (an object, array, string in double quotes, number, true, false or null)");
  };
  try {
    value(0);
    space();
    if (i < text.length) fail('more text after the end of the JSON value');
    return undefined;
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    const before = text.slice(0, err.offset);
    const line = before.split('\n').length;
    return { offset: err.offset, line, column: err.offset - (before.lastIndexOf('\n') + 1) + 1, reason: err.reason };
  }
}
