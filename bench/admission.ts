/**
 * Admission control under attack (issue 9), against a server process with
 * default limits (bench/admission-server.ts):
 *
 * - slots: `--addresses` source addresses (127.0.0.10, .11, ...) each hold
 *   `--per-address` upgraded WebSockets that never send handshake step 1,
 *   reopening each one 20 ms after it is closed, while an honest client on
 *   127.0.0.1 connects (full handshake), closes and connects again for
 *   `--seconds`. Reports the honest success rate.
 * - flood: one address (127.0.0.50) starts handshakes as fast as
 *   `--flood-concurrency` loops allow (a valid step 1, replayed: the
 *   cheapest attack that still makes the server do X25519 and sign), for
 *   `--flood-seconds`. Reports attempts per second, how many got step 2
 *   (the server did the expensive work), the server's CPU per attempt and
 *   the server's `onError` calls (what an application would log).
 *
 * `--lib PATH` measures another build (its `dist/src/index.js`), e.g. the
 * code before a change: `node dist/bench/admission.js --lib /tmp/old/dist/src/index.js`.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

const { values } = parseArgs({
  options: {
    lib: { type: 'string', default: fileURLToPath(new URL('../src/index.js', import.meta.url)) },
    addresses: { type: 'string', default: '2' },
    'per-address': { type: 'string', default: '64' },
    seconds: { type: 'string', default: '30' },
    'flood-seconds': { type: 'string', default: '10' },
    'flood-concurrency': { type: 'string', default: '16' },
  },
});
const lib = (await import(values.lib!)) as typeof import('../src/index.js');

interface Stats {
  cpuUs: number;
  refusals: number;
  connections: number;
  pending: number;
}

const child = fork(fileURLToPath(new URL('./admission-server.js', import.meta.url)), [values.lib!], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const [ready] = (await once(child, 'message')) as [{ port: number }];
const url = `ws://127.0.0.1:${ready.port}/`;
const stats = async (): Promise<Stats> => {
  child.send({ cmd: 'stats' });
  const [s] = (await once(child, 'message')) as [Stats];
  return s;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = (line: string) => process.stdout.write(line + '\n');

/** One raw WebSocket from `localAddress`; resolves when it is closed (by either side) or fails. */
function rawSocket(localAddress: string, onOpen: (ws: WebSocket) => void): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, [lib.SUBPROTOCOL_ENCRYPTED], { localAddress, perMessageDeflate: false });
    ws.on('error', () => {});
    ws.on('open', () => onOpen(ws));
    ws.on('close', () => resolve());
  });
}

async function slotAttack(): Promise<void> {
  const addresses = Number(values.addresses);
  const perAddress = Number(values['per-address']);
  const seconds = Number(values.seconds);
  let stop = false;
  let attackerOpens = 0;
  const holders: Array<Promise<void>> = [];
  for (let a = 0; a < addresses; a++) {
    for (let k = 0; k < perAddress; k++) {
      holders.push(
        (async () => {
          while (!stop) {
            await rawSocket(`127.0.0.${10 + a}`, () => attackerOpens++);
            await sleep(20);
          }
        })(),
      );
    }
  }
  await sleep(1000);
  const identity = lib.NodeIdentity.generate();
  const codes: Record<string, number> = {};
  let ok = 0;
  let attempts = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    attempts++;
    const t = new lib.EncryptedWebSocketClientTransport(url, { identity, allowAnyPeer: true, handshakeTimeoutMs: 5000 });
    t.onerror = () => {};
    try {
      await t.start();
      ok++;
      await t.close();
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'other';
      codes[code] = (codes[code] ?? 0) + 1;
    }
    await sleep(200);
  }
  stop = true;
  const s = await stats();
  out(`slots: ${addresses} addresses x ${perAddress} idle sockets (${attackerOpens} opened in all), ${seconds} s`);
  out(`slots: honest connects ${ok} of ${attempts} (${((100 * ok) / attempts).toFixed(1)} %), failures ${JSON.stringify(codes)}; server refusals reported ${s.refusals}`);
  await Promise.race([Promise.all(holders), sleep(20_000)]);
}

async function flood(): Promise<void> {
  const seconds = Number(values['flood-seconds']);
  const concurrency = Number(values['flood-concurrency']);
  const step1 = new lib.Handshake('initiator', lib.NodeIdentity.generate()).start();
  const before = await stats();
  let attempts = 0;
  let answered = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        attempts++;
        await rawSocket('127.0.0.50', (ws) => {
          ws.once('message', () => {
            answered++;
            ws.terminate();
          });
          ws.send(step1);
        });
      }
    }),
  );
  const elapsed = (Date.now() - t0) / 1000;
  await sleep(500);
  const after = await stats();
  const cpuMs = (after.cpuUs - before.cpuUs) / 1000;
  out(`flood: ${attempts} handshake attempts from one address in ${elapsed.toFixed(1)} s (${(attempts / elapsed).toFixed(0)}/s), ${answered} got step 2`);
  out(`flood: server CPU ${cpuMs.toFixed(0)} ms = ${(cpuMs / attempts).toFixed(3)} ms per attempt (${((100 * cpuMs) / 1000 / elapsed).toFixed(0)} % of a core); server refusals reported ${after.refusals - before.refusals}`);
}

try {
  await slotAttack();
  await flood();
} finally {
  child.send({ cmd: 'exit' });
}
