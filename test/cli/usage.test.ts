/**
 * Mistakes on the command line, as the real program answers them: every
 * one is a single line in one format (`mcp-e2e: error: ...`), exit code 2,
 * with the fix where there is one (did you mean, the corrected command
 * line, the option's command). Help per command with examples, --version
 * and -V, and the serve checks that used to pass silently (--allow with a
 * missing file, --host with a port).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OptionSpec } from '../../src/cli/args.js';
import { COMMANDS, GLOBAL_OPTIONS, OPTIONS } from '../../src/cli/commands.js';
import { ROOT, makeHome, oneLine, runCli, startServe, DEMO_SERVER } from './helpers.js';

test('typos and misplaced options: one line with a suggestion, never Node\'s parser text', () => {
  const { home } = makeHome();
  const cases: Array<[string[], string]> = [
    [['connect', 'ws://h:1', '--peeer', 'x'], 'mcp-e2e: error: unknown option --peeer (did you mean --peer?) (see mcp-e2e connect --help)'],
    [['connect', 'ws://h:1', '--rec'], 'mcp-e2e: error: unknown option --rec (did you mean --reconnect?) (see mcp-e2e connect --help)'],
    [['serve', '--prot', '1', '--', 'x'], 'mcp-e2e: error: unknown option --prot (did you mean --port?) (see mcp-e2e serve --help)'],
    [['id', '--peeer', 'x'], 'mcp-e2e: error: unknown option --peeer (--peer is an option of connect, not of id) (see mcp-e2e id --help)'],
    [['serve', '--peer', 'x', '--', 'x'], 'mcp-e2e: error: --peer does not apply to serve; it is an option of connect (see mcp-e2e serve --help)'],
    [['--peer', 'x', 'connect', 'ws://h:1'], 'mcp-e2e: error: --peer is an option of connect; it goes after the command, e.g. mcp-e2e connect --peer (see mcp-e2e --help)'],
    [['conect', 'ws://h:1'], 'mcp-e2e: error: unknown command "conect" (did you mean connect?) (see mcp-e2e --help)'],
    [['connect'], 'mcp-e2e: error: usage: mcp-e2e connect URL [--peer PEER] | NODE_ID | NAME [options] (see mcp-e2e connect --help)'],
    [['connect', 'ws://h:1', '--keepalive'], 'mcp-e2e: error: --keepalive needs a value: --keepalive MS (see mcp-e2e connect --help)'],
    [['connect', 'ws://h:1', '--reconnect=yes'], 'mcp-e2e: error: --reconnect takes no value (see mcp-e2e connect --help)'],
    [['connect', 'ws://h:1', '--peer', 'a', '--peer', 'b'], 'mcp-e2e: error: --peer is given twice; give it once (see mcp-e2e connect --help)'],
    [['id', '--', 'x'], 'mcp-e2e: error: id takes no command after -- (see mcp-e2e id --help)'],
  ];
  for (const [args, line] of cases) assert.equal(oneLine([...args, '--home', home]), line, args.join(' '));
});

test('serve without -- before a command with flags gets the corrected command line, as without flags', () => {
  const { home } = makeHome();
  assert.equal(
    oneLine(['serve', '--home', home, 'npx', '-y', '@modelcontextprotocol/server-everything']),
    `mcp-e2e: error: serve takes the MCP server's command after --: mcp-e2e serve --home ${home} -- npx -y @modelcontextprotocol/server-everything`,
  );
  assert.equal(oneLine(['serve', '--home', home, 'node', 'server.js']), `mcp-e2e: error: serve takes the MCP server's command after --: mcp-e2e serve --home ${home} -- node server.js`);
  // Words that need quoting are quoted in the suggestion.
  assert.equal(oneLine(['serve', 'sh', '-c', 'echo hi; cat']), "mcp-e2e: error: serve takes the MCP server's command after --: mcp-e2e serve -- sh -c 'echo hi; cat'");
});

test('mcp-e2e CMD --help: that command\'s options and examples; --help lists every option; --version and -V', () => {
  for (const c of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      const r = runCli([c.name, flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.startsWith(`usage: mcp-e2e ${c.name}`), r.stdout);
      for (const o of Object.keys(c.options)) assert.ok(r.stdout.includes(`--${o}`), `${c.name} --help lacks --${o}`);
      if (c.examples.length) assert.match(r.stdout, /\nExamples:\n {2}mcp-e2e /);
    }
  }
  const all = runCli(['--help']);
  assert.equal(all.code, 0);
  for (const o of Object.keys(OPTIONS)) assert.ok(all.stdout.includes(`--${o}`), `--help lacks --${o}`);
  for (const g of GLOBAL_OPTIONS) {
    const short = (OPTIONS[g] as OptionSpec).short;
    if (short) assert.ok(all.stdout.includes(`-${short}, --${g}`), `--help lacks -${short}`);
  }
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  for (const flag of ['--version', '-V']) assert.equal(runCli([flag]).stdout, `${version}\n`);
  // No command: the usage, on stdout, exit 2.
  const none = runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /^usage: mcp-e2e <command>/);
});

test('serve: --allow with a missing file and --host with a port are refused in one line', () => {
  const { home } = makeHome();
  assert.equal(
    oneLine(['serve', '--home', home, '--allow', join(home, 'alowed_peers'), '--', 'cat']),
    `mcp-e2e: error: --allow ${join(home, 'alowed_peers')}: no such file (create it with one node id per line, or leave --allow out to use ${join(home, 'allowed_peers')})`,
  );
  assert.equal(oneLine(['serve', '--home', home, '--host', '0.0.0.0:8765', '--', 'cat']), 'mcp-e2e: error: --host takes an address without a port: use --host 0.0.0.0 --port 8765');
  assert.equal(oneLine(['serve', '--home', home, '--host', '[::]:8765', '--', 'cat']), 'mcp-e2e: error: --host takes an address without a port: use --host :: --port 8765');
  assert.match(oneLine(['serve', '--home', home, '--host', '192.0.2.1', '--', 'cat']), /^mcp-e2e: error: cannot listen on 192\.0\.2\.1: not an address of this machine; give --host one of its addresses, or 0\.0\.0\.0 \(::\) for all$/);
});

test('serve\'s readable log: every line starts with the local time; no "allowlist reloaded" at start', async () => {
  const server = makeHome();
  const serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER], { readable: true });
  try {
    // Longer than two polls of the allowlist (which does not exist: watchFile calls back once for that).
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(serve.log.length >= 2, serve.log.join('\n'));
    for (const line of serve.log) assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} mcp-e2e: /);
    assert.ok(!serve.log.some((l) => l.includes('allowlist reloaded')), serve.log.join('\n'));
  } finally {
    await serve.stop();
  }
});
