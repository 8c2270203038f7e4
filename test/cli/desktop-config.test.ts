/**
 * README's desktop-app entry (the `claude_desktop_config.json` block after
 * the `desktop-config` marker) is what it says: valid JSON whose args the
 * CLI parser accepts, and, with the placeholders filled in, a working MCP
 * server for an SDK client that starts it as a desktop app does (the SDK's
 * StdioClientTransport passes only a default environment: HOME, PATH, USER,
 * ..., never MCP_E2E_HOME). Without `--home` the same entry finds no
 * identity: the reason the README gives for it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { parseArgs } from '../../src/cli/args.js';
import { COMMANDS, GLOBAL_OPTIONS, OPTIONS } from '../../src/cli/commands.js';
import { allowPeer } from '../../src/cli/peers.js';
import { CLI, DEMO_SERVER, ROOT, makeHome, startServe, tempDir } from './helpers.js';

interface Entry {
  command: string;
  args: string[];
  env?: Record<string, string>;
}

function readmeEntry(): Entry {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- desktop-config:[^>]*-->\s*```json\n([\s\S]*?)\n```/.exec(readme);
  assert.ok(block, 'README has the desktop-config block');
  const config = JSON.parse(block[1]!) as { mcpServers: Record<string, Entry> };
  const entries = Object.values(config.mcpServers);
  assert.equal(entries.length, 1);
  return entries[0]!;
}

/** Start `entry` as a desktop app would (its command's absolute path replaced by node + the built CLI). */
async function launch(entry: Entry, env?: Record<string, string>) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, ...entry.args], ...(env || entry.env ? { env: { ...entry.env, ...env } } : {}), stderr: 'pipe' });
  const stderr: string[] = [];
  transport.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()));
  const client = new Client({ name: 'desktop-config-test', version: '1.0.0' });
  return { client, transport, stderr };
}

test("README's claude_desktop_config.json entry parses, passes --home with an absolute path, and its args are accepted by the CLI parser", () => {
  const entry = readmeEntry();
  assert.ok(isAbsolute(entry.command), `command is an absolute path: ${entry.command}`);
  const { command, values, positionals } = parseArgs(entry.args, OPTIONS, GLOBAL_OPTIONS, COMMANDS);
  assert.equal(command?.name, 'connect');
  assert.match(positionals[0]!, /^ws:\/\//);
  const home = (values as { home?: string }).home ?? entry.env?.MCP_E2E_HOME;
  assert.ok(home && isAbsolute(home), `the home is given explicitly, as an absolute path: ${home}`);
  assert.ok((values as { peer?: string }).peer, 'the server is pinned with --peer');
});

test("README's entry, filled in, works for a client that starts it as a desktop app does; without --home it finds no identity", async () => {
  const server = makeHome();
  const client = makeHome();
  allowPeer(join(server.home, 'allowed_peers'), client.identity.nodeId);
  const serve = await startServe(['--home', server.home], [process.execPath, DEMO_SERVER]);
  try {
    const readme = readmeEntry();
    const fill = (a: string) => (a.startsWith('ws://') ? serve.url : a === '<SERVER_NODE_ID>' ? server.identity.nodeId : a.startsWith('/Users/') ? client.home : a);
    const entry = { ...readme, args: readme.args.map(fill) };
    const ok = await launch(entry);
    await ok.client.connect(ok.transport);
    const tools = await ok.client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'echo'), ok.stderr.join(''));
    await ok.client.close();

    // The same entry without --home, where the app's HOME has no ~/.mcp-e2e (MCP_E2E_HOME of a shell never gets there).
    const i = entry.args.indexOf('--home');
    const emptyHome = tempDir();
    const bare = await launch({ ...entry, args: [...entry.args.slice(0, i), ...entry.args.slice(i + 2)] }, { HOME: emptyHome });
    await assert.rejects(bare.client.connect(bare.transport));
    assert.ok(bare.stderr.join('').includes(`no identity at ${join(emptyHome, '.mcp-e2e', 'identity.json')}; create one with: mcp-e2e keygen`), bare.stderr.join(''));
  } finally {
    await serve.stop();
  }
});
