/**
 * `npm run demo`: the whole system on built-in defaults, with real processes.
 *
 * 1. Makes two identities in a temporary folder (a server and a client).
 * 2. Starts `mcp-e2e serve` around the bundled stdio MCP server, allowing
 *    only the client's node id.
 * 3. Starts `mcp-e2e connect`, pinned to the server's node id, as the stdio
 *    server command of a real MCP SDK Client.
 * 4. Lists the tools, calls one, and shuts everything down.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { NodeIdentity } from '../identity/identity.js';
import { allowPeer } from '../cli/peers.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const SERVER = fileURLToPath(new URL('./demo-server.js', import.meta.url));
const say = (line = '') => process.stdout.write(line + '\n');

const root = mkdtempSync(join(tmpdir(), 'mcp-e2e-demo-'));
const serverHome = join(root, 'server');
const clientHome = join(root, 'client');
const serverId = NodeIdentity.generate();
const clientId = NodeIdentity.generate();
serverId.save(join(serverHome, 'identity.json'));
clientId.save(join(clientHome, 'identity.json'));
allowPeer(join(serverHome, 'allowed_peers'), clientId.nodeId, 'demo-client');

say('mcp-e2e demo: an MCP client and a stdio MCP server, talking through an encrypted, authenticated channel');
say(`  server node id  ${serverId.nodeId}  (fingerprint ${serverId.fingerprint})`);
say(`  client node id  ${clientId.nodeId}  (fingerprint ${clientId.fingerprint})`);
say();

const serve = spawn(process.execPath, [CLI, 'serve', '--home', serverHome, '--port', '0', '--json', '--', process.execPath, SERVER], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
const serveLog: string[] = [];
const url = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`serve did not start:\n${serveLog.join('\n')}`)), 15_000);
  createInterface({ input: serve.stderr! }).on('line', (line) => {
    serveLog.push(line);
    try {
      const entry = JSON.parse(line) as { url?: string };
      if (entry.url) {
        clearTimeout(timer);
        resolve(entry.url);
      }
    } catch {
      // not a log line of ours
    }
  });
  serve.on('exit', (code) => reject(new Error(`serve exited with code ${code}:\n${serveLog.join('\n')}`)));
});
say(`$ mcp-e2e serve --port 0 -- node demo-server.js      → listening on ${url}`);
say(`$ mcp-e2e connect ${url} --peer ${serverId.nodeId}   (launched by the MCP client)`);
say();

const client = new Client({ name: 'mcp-e2e-demo', version: '1.0.0' });
const transport = new StdioClientTransport({
  command: process.execPath,
  args: [CLI, 'connect', url, '--peer', serverId.nodeId, '--home', clientHome],
  stderr: 'pipe',
});
const connectLog: string[] = [];
transport.stderr?.on('data', (c: Buffer) => connectLog.push(c.toString()));
let exitCode = 0;
try {
  await client.connect(transport);
  const info = client.getServerVersion();
  say(`connected to "${info?.name}" ${info?.version} through the encrypted relay`);
  const { tools } = await client.listTools();
  say(`tools: ${tools.map((t) => t.name).join(', ')}`);
  const result = await client.callTool({ name: 'echo', arguments: { message: 'hello through mcp-e2e' } });
  const text = (result.content as Array<{ type: string; text?: string }>).find((c) => c.type === 'text')?.text;
  say(`call echo("hello through mcp-e2e") → ${text}`);
  const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
  say(`call add(2, 40) → ${(sum.content as Array<{ text?: string }>)[0]?.text}`);
} catch (err) {
  exitCode = 1;
  process.stderr.write(`demo failed: ${(err as Error).message}\nconnect log:\n${connectLog.join('')}\nserve log:\n${serveLog.join('\n')}\n`);
} finally {
  await client.close();
  serve.kill('SIGTERM');
  await new Promise((r) => serve.once('exit', r));
  rmSync(root, { recursive: true, force: true });
}
say();
say(exitCode === 0 ? 'done: every message above crossed the wire encrypted (AES-256-GCM) and signed (Ed25519).' : 'demo failed');
process.exitCode = exitCode;
