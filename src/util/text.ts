/**
 * Text that a peer, a child process or a file controls, on its way to a
 * person's terminal or into a line-based file. C0 controls (ESC, CR, LF,
 * BS, ...), DEL and C1 controls (U+0080-U+009F; CSI is U+009B) can move the
 * cursor, erase lines, set the window title or start a new line of a file:
 * they are escaped for display, and refused where they would be written.
 */

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** True when `text` contains a C0, DEL or C1 control character. */
export function hasControlCharacters(text: string): boolean {
  return CONTROL.test(text);
}

/**
 * What is escaped for display: the controls above, and characters that are
 * not controls but still change what a person reads: bidirectional
 * overrides, embeddings, isolates and marks (U+061C, U+200E-U+200F,
 * U+202A-U+202E, U+2066-U+2069: "Trojan Source"), the line and paragraph
 * separators (U+2028, U+2029: a new line in many viewers), and invisible
 * ones (U+200B-U+200D, U+2060, U+FEFF).
 */
const SHOWN_ESCAPED = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]/g;

/**
 * `text` safe to print: every C0, DEL and C1 control character shown as
 * `\xHH`, and every bidirectional, separator or invisible character as
 * `\u{HHHH}`.
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(SHOWN_ESCAPED, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0x9f ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}
