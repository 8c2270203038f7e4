/**
 * Relay memory with a child that never reads (issue 9): `serve` around a
 * child that never reads its stdin; a client sends `--mib` MiB messages,
 * each awaited, until one has not gone out after 4 s (the client is made to
 * wait). Prints how many went out and serve's RSS growth (Linux /proc).
 *
 *   node dist/bench/relay-memory.js --mib 1
 *   node dist/bench/relay-memory.js --mib 16
 */
import { parseArgs } from 'node:util';
import { EncryptedWebSocketClientTransport } from '../src/transport/client.js';
import { NodeIdentity } from '../src/identity/identity.js';
import { makeHome, rssOf, startServe } from '../test/cli/helpers.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '16' }, max: { type: 'string', default: '64' } } });
const MiB = 1024 * 1024;
const size = Number(values.mib) * MiB - 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const server = makeHome();
const serve = await startServe(['--home', server.home, '--allow-any-peer'], [process.execPath, '-e', 'setInterval(() => {}, 1000); console.error("ready")']);
const t = new EncryptedWebSocketClientTransport(serve.url, { identity: NodeIdentity.generate(), expectedPeer: server.identity.nodeId });
try {
  await t.start();
  await serve.waitFor((e) => /\[child\] ready/.test(String(e.msg)));
  await sleep(500);
  const before = rssOf(serve.proc.pid!);
  let sent = 0;
  for (; sent < Number(values.max); sent++) {
    const message = { jsonrpc: '2.0' as const, method: 'notifications/pad', params: { pad: 'x'.repeat(size) } };
    const out = await Promise.race([t.send(message).then(() => true), sleep(4000).then(() => false)]);
    if (!out) break;
  }
  await sleep(1000);
  const grown = rssOf(serve.proc.pid!) - before;
  process.stdout.write(`messages of ${values.mib} MiB: ${sent} sent before the client was made to wait (of ${values.max}); serve RSS +${(grown / MiB).toFixed(1)} MiB\n`);
} finally {
  await t.close().catch(() => {});
  await serve.stop();
}
