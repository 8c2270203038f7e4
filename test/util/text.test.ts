/**
 * Text shown to a person (src/util/text.ts): controls, bidirectional
 * overrides, line separators and invisible characters arrive escaped, so a
 * server's stderr, a peer's name or a file cannot reorder, hide or split
 * what a person reads; ordinary text, including non-Latin scripts, is kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeControlCharacters, hasControlCharacters } from '../../src/util/text.js';

test('controls are shown as \\xHH; bidi, separators and invisible characters as \\u{HHHH}; other text unchanged', () => {
  assert.equal(escapeControlCharacters('a\x1b[2Kb\r\nc\x7f\x9bd'), 'a\\x1b[2Kb\\x0d\\x0ac\\x7f\\x9bd');
  // "Trojan Source": an override that makes 'evil' read as 'live', and isolates, marks.
  assert.equal(escapeControlCharacters('safe\u202elive\u202c \u2066x\u2069 \u200f\u061c'), 'safe\\u{202e}live\\u{202c} \\u{2066}x\\u{2069} \\u{200f}\\u{61c}');
  assert.equal(escapeControlCharacters('one\u2028two\u2029three'), 'one\\u{2028}two\\u{2029}three');
  assert.equal(escapeControlCharacters('\ufeffzero\u200bwidth\u200d\u2060'), '\\u{feff}zero\\u{200b}width\\u{200d}\\u{2060}');
  for (const kept of ['Büro-Knoten', 'مرحبا', '東京', 'emoji 🙂', 'tab-free text']) assert.equal(escapeControlCharacters(kept), kept);
  // Refusal where text is written (trust files) is about controls only, as before.
  assert.equal(hasControlCharacters('a\u202eb'), false);
  assert.equal(hasControlCharacters('a\nb'), true);
});
