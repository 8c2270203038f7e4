/**
 * The seed's examples, translated to TypeScript (examples/*.ts, shown in the
 * README as they are), run as written: `ws://localhost:8000` and
 * `start('localhost', 8000)`, importing from 'mcp-e2e'. Each run has a network
 * namespace of its own, so port 8000 is free whatever else runs here. The
 * plaintext example talks to a peer that does not speak mcp-e2e: supergateway
 * in front of server-everything.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NodeIdentity } from '../../src/index.js';
import { startNetNamespace, type NetNamespace } from '../helpers/netns.js';
import { deferred, within } from '../transport/helpers.js';

const repo = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));
const example = (name: string) => repo(`dist/examples/${name}.js`);

/** Everything a process wrote, and how it ended. */
async function finished(child: ChildProcess, ms: number, what: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await within(once(child, 'exit'), ms, what)) as [number | null];
  return { code, stdout, stderr };
}

/** Resolves with the first match of `pattern` in the output of `child`. */
function waitFor(child: ChildProcess, pattern: RegExp, ms: number, what: string): Promise<RegExpMatchArray> {
  const found = deferred<RegExpMatchArray>();
  let text = '';
  const onData = (d: Buffer) => {
    text += d.toString();
    const m = text.match(pattern);
    if (m) found.resolve(m);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.once('exit', (code) => found.reject(new Error(`${what}: exited (${code}) before printing ${pattern}: ${text}`)));
  return within(found.promise, ms, what);
}

describe("the seed's examples (examples/, README)", () => {
  test('the README shows each example exactly as the file the tests run', () => {
    const readme = readFileSync(repo('README.md'), 'utf8');
    for (const name of ['seed-client', 'seed-server', 'seed-plaintext-client']) {
      const code = readFileSync(repo(`examples/${name}.ts`), 'utf8').replace(/^\/\*\*[\s\S]*?\*\/\n/, '').trim();
      assert.ok(readme.includes('```ts\n' + code + '\n```'), `README.md does not show examples/${name}.ts as it is`);
    }
  });

  describe('encrypted: seed-server and seed-client on localhost:8000', () => {
    let ns: NetNamespace;
    let serverNodeId: string;
    before(async () => {
      ns = await startNetNamespace();
      const server = ns.run(process.execPath, [example('seed-server')]);
      serverNodeId = (await waitFor(server, /server node id: ([0-9a-f]{64})/, 20_000, 'seed-server to start'))[1]!;
    });
    after(async () => {
      await ns.close();
    });

    test('the client connects, sends the seed\'s message and prints the decrypted reply', async () => {
      const run = await finished(ns.run(process.execPath, [example('seed-client'), serverNodeId]), 20_000, 'seed-client');
      assert.equal(run.code, 0, run.stderr);
      const response = JSON.parse(run.stdout.trim());
      assert.equal(response.jsonrpc, '2.0');
      assert.equal(response.id, 1);
      assert.equal(response.result.ok, true);
      assert.match(response.result.client, /^[0-9a-f]{4}(-[0-9a-f]{4}){4}$/, 'the handler saw the client\'s verified fingerprint');
    });

    test('pinned to another node id, the client refuses the server (ERR_PEER_KEY_CHANGED) and exits with an error', async () => {
      const run = await finished(ns.run(process.execPath, [example('seed-client'), NodeIdentity.generate().nodeId]), 20_000, 'seed-client');
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /ERR_PEER_KEY_CHANGED/);
      assert.equal(run.stdout, '');
    });
  });

  describe('plaintext: seed-plaintext-client against supergateway + server-everything on localhost:8000', () => {
    let ns: NetNamespace;
    before(async () => {
      ns = await startNetNamespace();
      const everything = `${process.execPath} ${repo('node_modules/@modelcontextprotocol/server-everything/dist/index.js')}`;
      const gateway = ns.run(process.execPath, [repo('node_modules/supergateway/dist/index.js'), '--stdio', everything, '--outputTransport', 'ws', '--port', '8000']);
      await waitFor(gateway, /Listening on port 8000/, 20_000, 'supergateway to listen');
    });
    after(async () => {
      await ns.close();
    });

    test('the client speaks plain MCP with a peer that does not speak mcp-e2e and prints its answer', async () => {
      const run = await finished(ns.run(process.execPath, [example('seed-plaintext-client')]), 20_000, 'seed-plaintext-client');
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout.trim()), { jsonrpc: '2.0', id: 1, result: {} });
    });
  });
});
