/**
 * findJsonSyntaxError agrees with JSON.parse on what is JSON (vectors and
 * random mutations of a config file), and says where and why a text is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { findJsonSyntaxError, MAX_JSON_DEPTH, quoteForMessage } from '../../src/util/json.js';

const parses = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

test('what JSON.parse accepts, the scanner accepts (and the reverse)', () => {
  const good = [
    '{}', '[]', ' {"a": 1} ', '0', '-0', '-0.5e-7', '1E+2', '"x"', 'true', 'null', '"\\u00e9\\n\\/"', '"\u2028"', '"\ud800"',
    '{"serve": {"port": 8765, "announce": true, "bootstrap": ["ws://hub:8765#ID"]}, "connect": {}}',
    '[[[[]]]]', '\r\n\t{"a":[1,2,{"b":null}]}\n',
  ];
  for (const text of good) assert.equal(findJsonSyntaxError(text), undefined, text);
  const bad = ['', ' ', '{', '{"a"}', '{"a":}', '{"a":1,}', '[1,]', '[1 2]', "{'a':1}", '{a:1}', '01', '1.', '.5', '+1', '-', 'tru', 'True', 'undefined', 'NaN', '"\\x41"', '"\\u12"', '"a\tb"', '"abc', '{}{}', '{} x', '\ufeff{}', '\u00a0{}'];
  for (const text of bad) {
    assert.ok(!parses(text), `JSON.parse accepts ${JSON.stringify(text)}`);
    assert.ok(findJsonSyntaxError(text), `scanner accepts ${JSON.stringify(text)}`);
  }
  // Random edits of a config file: wherever JSON.parse has an opinion, the scanner has the same one.
  const base = '{"serve": {"port": 8765, "announce": true, "name": "b\\u00e9x", "bootstrap": ["ws://hub:8765#ID", "x"], "gossip-interval": -1.5e2}, "connect": {"peer": null}}';
  const alphabet = '{}[]:,"\\ 0123456789.eE+-tfnrlsu\n\t\u0001x';
  for (let n = 0; n < 20_000; n++) {
    const r = randomBytes(4);
    const at = r.readUInt16LE(0) % base.length;
    const c = alphabet[r[2]! % alphabet.length]!;
    const text = r[3]! % 3 === 0 ? base.slice(0, at) + base.slice(at + 1) : r[3]! % 3 === 1 ? base.slice(0, at) + c + base.slice(at) : base.slice(0, at) + c + base.slice(at + 1);
    const err = findJsonSyntaxError(text);
    // A name given twice is the scanner's one rule beyond JSON.parse's.
    if (err?.reason.includes('given twice')) continue;
    assert.equal(err === undefined, parses(text), `${JSON.stringify(text)}: ${err?.reason}`);
  }
});

test('the place and the reason: line and column count from 1', () => {
  const at = (text: string) => {
    const e = findJsonSyntaxError(text)!;
    return `${e.line}:${e.column} ${e.reason}`;
  };
  assert.equal(at('{\n  "serve": {\n    "port": 8765\n    "host": "::"\n  }\n}'), "4:5 expected ',' or '}' after a property value");
  assert.equal(at('{"serve": {"port": 8765,}}'), '1:25 expected a property name in double quotes');
  assert.equal(at('{"serve": {"port": x}}'), '1:20 expected a value (an object, array, string in double quotes, number, true, false or null)');
  assert.equal(at('{"a": [1 2]}'), "1:10 expected ',' or ']' after an array element");
  assert.equal(at('{"a" 1}'), "1:6 expected ':' after a property name");
  assert.equal(at('{\n"a": "b'), '2:6 a string that is never closed starts here');
  assert.equal(at('{"a": "\\q"}'), '1:8 not an escape JSON has (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
  assert.equal(at('{"a": "\u001b[2J"}'), '1:8 a control character in a string (write it as an escape, e.g. \\n or \\u0009)');
  assert.equal(at('{"a": 1'), "1:8 expected ',' or '}' after a property value");
  assert.equal(at('{"a": 1,'), '1:9 the text ends inside an object');
  assert.equal(at('{"a": 1} {'), '1:10 more text after the end of the JSON value');
  assert.equal(at(''), '1:1 the text ends where a value was expected');
  assert.equal(at('{"serve": {"port": 1, "port": 2}}'), '1:23 "port" is given twice in this object');
  // Names are shown escaped: a control character in a name does not reach the terminal.
  assert.equal(at('{"\\u001b]0;x": 1, "\\u001b]0;x": 2}'), '1:19 "\\u001b]0;x" is given twice in this object');
});

test('nesting is bounded: a 64 KiB file of brackets is refused at its limit, without a deep stack', () => {
  assert.equal(findJsonSyntaxError('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH)), undefined);
  const e = findJsonSyntaxError('['.repeat(65536));
  assert.equal(e?.offset, MAX_JSON_DEPTH);
  assert.equal(e?.reason, `nested more than ${MAX_JSON_DEPTH} deep`);
});

test('quoteForMessage: JSON-quoted, control characters escaped (C1 too), long text cut before quoting', () => {
  assert.equal(quoteForMessage('port'), '"port"');
  assert.equal(quoteForMessage('a\u001b[2J\u009b'), '"a\\u001b[2J\\x9b"');
  assert.equal(quoteForMessage('x'.repeat(63) + '\n' + 'y'), `"${'x'.repeat(63)}\\n..."`);
  assert.equal(quoteForMessage('x'.repeat(64)), `"${'x'.repeat(64)}"`);
});
