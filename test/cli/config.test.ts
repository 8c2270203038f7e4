/**
 * The config file (src/cli/config.ts), as the real program reads it: its
 * defaults are used (serve's port, connect's pin), the command line wins,
 * `--config FILE` and `--no-config` choose, and every mistake in it is one
 * line naming the file, the section and the key: unknown keys with the
 * parser's suggestion, options that cannot come from a file, wrong types,
 * JSON with its line and column. A file other users can write is refused,
 * as the trust files are. README's example file is accepted as it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../../src/identity/identity.js';
import { parseConfig } from '../../src/cli/config.js';
import { CLI, DEMO_SERVER, ROOT, connectError, freePort, makeHome, oneLine, runCli, startServe } from './helpers.js';

/** A home with an identity and `config` (an object, or raw text) as its config.json. */
function homeWithConfig(config: unknown): { home: string; identity: NodeIdentity; path: string } {
  const h = makeHome();
  const path = join(h.home, 'config.json');
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config, null, 2), { mode: 0o600 });
  return { ...h, path };
}

test('serve listens on the port the file gives, takes its booleans, and --port on the command line wins', async () => {
  const port = await freePort();
  const { home } = homeWithConfig({ serve: { port, announce: true, 'no-mdns': true, name: 'from-config' } });
  const serve = await startServe(['--home', home], [process.execPath, DEMO_SERVER], { noPort: true });
  try {
    assert.equal(serve.port, port);
    await serve.waitFor((e) => /^announcing "from-config" at /.test(String(e.msg)));
  } finally {
    await serve.stop();
  }
  const other = await startServe(['--home', home, '--port', '0'], [process.execPath, DEMO_SERVER]);
  try {
    assert.notEqual(other.port, port);
  } finally {
    await other.stop();
  }
  // --no-config: the file's port and --announce are not used (with no allowlist, serve says nobody is allowed).
  const none = await startServe(['--home', home, '--no-config'], [process.execPath, DEMO_SERVER]);
  try {
    assert.notEqual(none.port, port);
    await none.waitFor((e) => /no peer is allowed yet/.test(String(e.msg)));
    assert.ok(!none.log.some((l) => l.includes('announcing')), none.log.join('\n'));
  } finally {
    await none.stop();
  }
});

test('connect pins the peer the file names, and --peer on the command line wins', async () => {
  const server = makeHome();
  const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, DEMO_SERVER]);
  try {
    const other = NodeIdentity.generate();
    const client = homeWithConfig({ connect: { peer: other.nodeId } });
    const e = await connectError([serve.url, '--home', client.home]);
    assert.match(e.message, new RegExp(`^MCP error -32000: mcp-e2e: peer identity ${server.identity.fingerprint} is not the pinned peer ${other.fingerprint} \\(node id ${server.identity.nodeId}\\)$`));
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'connect', serve.url, '--home', client.home, '--peer', server.identity.nodeId], stderr: 'ignore' });
    const mcp = new Client({ name: 'config-test', version: '1' });
    await mcp.connect(transport);
    assert.ok((await mcp.listTools()).tools.length > 0);
    await mcp.close();
  } finally {
    await serve.stop();
  }
});

test('every mistake in the file is one line naming the file, the section and the key', () => {
  const cases: Array<[unknown, string]> = [
    [{ serve: { prot: 8765 } }, '"prot" in "serve" is not an option of serve (did you mean "port"?)'],
    [{ connect: { reconect: true } }, '"reconect" in "connect" is not an option of connect (did you mean "reconnect"?)'],
    [{ serve: { peer: 'x' } }, '"peer" in "serve" is not an option of serve (it is an option of connect)'],
    [{ serve: { color: 'x' } }, '"color" in "serve" is not an option of serve (see mcp-e2e serve --help)'],
    [{ srve: {} }, '"srve" is not a command (did you mean "serve"?); the file has one object per command, e.g. {"serve": {"port": 8765}}'],
    [{ serve: { home: '/elsewhere' } }, '"home" in "serve" cannot be set in a config file: the file is read from the home; give --home on the command line (or MCP_E2E_HOME)'],
    [{ connect: { config: 'other.json' } }, '"config" in "connect" cannot be set in a config file: --config is an option of every command, for the command line'],
    [{ keygen: { force: true } }, '"force" in "keygen" cannot be set in a config file: it replaces the identity, and is meant each time it is typed'],
    // What turns off authentication or encryption is typed each time, never a default a file supplies unseen.
    [{ serve: { 'allow-any-peer': true } }, '"allow-any-peer" in "serve" cannot be set in a config file: it lets every client in; type it when you mean it'],
    [{ serve: { 'allow-plaintext': true } }, '"allow-plaintext" in "serve" cannot be set in a config file: it accepts unauthenticated, unencrypted clients; type it when you mean it'],
    [{ serve: { 'bootstrap-tofu': true } }, '"bootstrap-tofu" in "serve" cannot be set in a config file: it believes the first key a bootstrap peer shows; type it when you mean it'],
    [{ connect: { plaintext: true } }, '"plaintext" in "connect" cannot be set in a config file: it turns off encryption and authentication; type it when you mean it'],
    [{ serve: { port: true } }, '"port" in "serve" must be a string or a number (--port PORT), not true'],
    [{ serve: { port: [8765] } }, '"port" in "serve" must be a string or a number (--port PORT), not an array: --port is given once'],
    [{ serve: { announce: 'yes' } }, '"announce" in "serve" must be true or false (--announce takes no value), not "yes"'],
    [{ serve: { bootstrap: 'ws://hub:8765#ID' } }, '"bootstrap" in "serve" must be an array of strings (--bootstrap URL#NODE_ID is repeatable), not "ws://hub:8765#ID"'],
    [{ serve: { 'pass-env': ['A', null] } }, '"pass-env" in "serve" must be an array of strings (--pass-env NAME is repeatable), not an array holding null'],
    [{ serve: 8765 }, '"serve" must be an object of option defaults, e.g. {"serve": {}}, not 8765'],
    // A key with a terminal escape is shown escaped.
    [{ serve: { '\u001b[2Jport': 1 } }, '"\\u001b[2Jport" in "serve" is not an option of serve (see mcp-e2e serve --help)'],
  ];
  for (const [config, line] of cases) {
    const { home, path } = homeWithConfig(config);
    assert.equal(oneLine(['id', '--home', home]), `mcp-e2e: error: config file ${path}: ${line}`, JSON.stringify(config));
  }
  const { home, path } = homeWithConfig([{ serve: {} }]);
  assert.equal(oneLine(['id', '--home', home]), `mcp-e2e: error: config file ${path} must be an object with one object per command, e.g. {"serve": {"port": 8765}}, not an array`);
});

test('text that is not JSON is refused with its line and column', () => {
  const cases: Array<[string, string]> = [
    ['{\n  "serve": {\n    "port": 8765\n    "announce": true\n  }\n}\n', "line 4, column 5: expected ',' or '}' after a property value"],
    ['{"serve": {"port": 8765,}}', 'line 1, column 25: expected a property name in double quotes'],
    ["{'serve': {}}", 'line 1, column 2: expected a property name in double quotes'],
    ['{"serve": {"port": 1, "port": 2}}', 'line 1, column 23: "port" is given twice in this object'],
    ['', 'line 1, column 1: the text ends where a value was expected'],
  ];
  for (const [text, where] of cases) {
    const { home, path } = homeWithConfig(text);
    assert.equal(oneLine(['id', '--home', home]), `mcp-e2e: error: config file ${path} is not valid JSON: ${where}`, text);
  }
  const { home, path } = homeWithConfig('');
  writeFileSync(path, Buffer.from('{"serve": {"name": "\xff"}}', 'latin1'));
  assert.equal(oneLine(['id', '--home', home]), `mcp-e2e: error: config file ${path} is not UTF-8 text`);
});

test('a config file others can write, or one too large, is refused (as the trust files are)', () => {
  for (const mode of [0o620, 0o602]) {
    const { home, path } = homeWithConfig({ serve: { port: 8765 } });
    chmodSync(path, mode);
    const r = runCli(['id', '--home', home]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    const m = mode.toString(8).padStart(4, '0');
    assert.equal(r.stderr, `mcp-e2e: error: permissions ${m} for config file ${path} let group or others write it: refusing to use it. Fix with: chmod go-w ${path} [ERR_FILE_PERMISSIONS]\n`);
  }
  const { home, path } = homeWithConfig(`{"serve": {"name": "${'x'.repeat(64 * 1024)}"}}`);
  const r = runCli(['id', '--home', home]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^mcp-e2e: error: config file ${path} is \\d+ bytes, more than the 65536 allowed \\[ERR_KEY_FILE_CORRUPT\\]\\n$`));
});

test('--config FILE reads another file (a missing one is an error), --no-config none; a refused default names the file', () => {
  const { home, identity } = homeWithConfig('{ broken');
  // Without any file, or with --no-config past a broken one, id just runs.
  assert.equal(runCli(['id', '--home', makeHome().home]).code, 0);
  assert.equal(runCli(['id', '--home', home, '--no-config']).stdout.split('\n')[0], identity.nodeId);
  const other = join(home, 'other.json');
  writeFileSync(other, JSON.stringify({ discover: { timeout: 'soon' } }), { mode: 0o600 });
  // The default file is not read when --config names another (it is broken), and the other's defaults are used:
  // the refusal of the value says where it came from.
  assert.equal(
    oneLine(['discover', '--home', home, '--config', other]),
    `mcp-e2e: error: --timeout expects seconds, more than 0 and at most 3600, got "soon" (--timeout came from config file ${other})`,
  );
  // --timeout on the command line wins over the file's (and is refused as typed, without the note).
  assert.equal(oneLine(['discover', '--home', home, '--config', other, '--timeout', '0']), 'mcp-e2e: error: --timeout expects seconds, more than 0 and at most 3600, got "0"');
  assert.equal(runCli(['id', '--home', home, '--config', other]).code, 0);
  assert.equal(oneLine(['id', '--home', home, '--config', join(home, 'nope.json')]), `mcp-e2e: error: --config ${join(home, 'nope.json')}: no such file`);
  assert.equal(oneLine(['id', '--home', home, '--config', other, '--no-config']), 'mcp-e2e: error: --config and --no-config contradict each other; give one');
  // Help never reads the file (a broken one does not hide it), and says where defaults come from.
  const help = runCli(['serve', '--help', '--home', home]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout.replace(/\s+/g, ' '), /Defaults for these options can be kept in HOME\/config\.json \(or --config FILE\), keyed by their long names, e\.g\. \{"serve": \{"host": "ADDR"\}\}; the command line wins\./);
});

test('README\'s example config file is accepted, and means what it says', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- config-example:[^>]*-->\s*```json\n([\s\S]*?)\n```/.exec(readme);
  assert.ok(block, 'README has the config-example block');
  const hub = NodeIdentity.generate().nodeId;
  const { home, path } = homeWithConfig(block[1]!.replace('<HUB_NODE_ID>', hub));
  const r = runCli(['id', '--home', home]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(parseConfig(readFileSync(path, 'utf8'), path), {
    serve: { host: '0.0.0.0', port: '8765', announce: true, name: 'build-box', bootstrap: [`ws://hub.example:8765#${hub}`] },
    connect: { reconnect: true },
  });
});
