/**
 * Text that a peer, a child process or a file controls, on its way to a
 * person's terminal or into a line-based file. C0 controls (ESC, CR, LF,
 * BS, ...), DEL and C1 controls (U+0080-U+009F; CSI is U+009B) can move the
 * cursor, erase lines, set the window title or start a new line of a file:
 * they are escaped for display, and refused where they would be written.
 */

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_GLOBAL = /[\u0000-\u001f\u007f-\u009f]/g;

/** True when `text` contains a C0, DEL or C1 control character. */
export function hasControlCharacters(text: string): boolean {
  return CONTROL.test(text);
}

/** `text` with every C0, DEL and C1 control character shown as `\xHH`, safe to print. */
export function escapeControlCharacters(text: string): string {
  if (!CONTROL.test(text)) return text;
  return text.replace(CONTROL_GLOBAL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
