/**
 * What per-record signatures cost in a live round trip, against the same
 * calls in a tight loop (docs/BENCHMARKS.md, "Signatures, per record").
 *
 *   node dist/bench/signature-cost.js [--rounds N]
 *   node --cpu-prof --cpu-prof-dir=DIR dist/bench/signature-cost.js   (then bench/profile-summary)
 *
 * One process holds a server and a client (binary framing), so both ends'
 * work adds up in each round trip: 1 KB requests, one in flight, signed and
 * unsigned sessions one after the other. The tight loop signs and verifies
 * the same 1 KB input under the record label with the same provider.
 */
import { parseArgs } from 'node:util';
import { CURVE25519_PROVIDER, ed25519Verify, importEd25519PublicKey } from '../src/crypto/primitives.js';
import { EncryptedWebSocketClientTransport, EncryptedWebSocketServer, NodeIdentity, type JSONRPCMessage } from '../src/index.js';
import { LABEL } from '../src/protocol.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3000' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 100) throw new RangeError('--rounds expects an integer of at least 100');

function tightLoop(n: number): { signUs: number; verifyUs: number } {
  const id = NodeIdentity.generate();
  const key = importEd25519PublicKey(id.publicKey);
  const body = Buffer.alloc(1100, 1);
  const input = Buffer.concat([LABEL.RECORD_SIGNATURE, body]);
  let signature = id.sign(LABEL.RECORD_SIGNATURE, body);
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) signature = id.sign(LABEL.RECORD_SIGNATURE, body);
  const signUs = Number(process.hrtime.bigint() - t) / n / 1000;
  t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (!ed25519Verify(key, input, signature)) throw new Error('does not verify');
  return { signUs, verifyUs: Number(process.hrtime.bigint() - t) / n / 1000 };
}

async function roundTrips(signatures: boolean, n: number): Promise<{ p50: number; p90: number }> {
  const serverId = NodeIdentity.generate();
  const server = new EncryptedWebSocketServer({
    identity: serverId,
    allowAnyPeer: true,
    signatures,
    onConnection: async (t) => {
      t.onmessage = (m) => void t.send({ jsonrpc: '2.0', id: (m as { id: number }).id, result: { ok: true } });
      await t.start();
    },
  });
  const address = await server.listen(0, '127.0.0.1');
  const client = new EncryptedWebSocketClientTransport(`ws://127.0.0.1:${address.port}`, { identity: NodeIdentity.generate(), expectedPeer: serverId.nodeId, signatures, framings: ['binary'] });
  let answered: () => void = () => {};
  client.onmessage = () => answered();
  await client.start();
  if (client.negotiated?.signatures !== signatures) throw new Error('the session did not negotiate the mode asked for');
  const pad = 'x'.repeat(1000);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const answer = new Promise<void>((resolve) => (answered = resolve));
    await client.send({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { pad } } as JSONRPCMessage);
    await answer;
    times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  await client.close();
  await server.close();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(n / 2)]!, p90: times[Math.floor(n * 0.9)]! };
}

const loop = tightLoop(rounds);
const signed = await roundTrips(true, rounds);
const unsigned = await roundTrips(false, rounds);
const us = (x: number) => `${x.toFixed(1)} µs`;
console.log(`Node ${process.version}, Ed25519 by ${CURVE25519_PROVIDER}, ${rounds} rounds`);
console.log(`tight loop: sign ${us(loop.signUs)}, verify ${us(loop.verifyUs)} (1 KB under the record label)`);
console.log(`1 KB round trip, client and server in this process: signed p50 ${us(signed.p50)} (p90 ${us(signed.p90)}), unsigned p50 ${us(unsigned.p50)} (p90 ${us(unsigned.p90)}), difference ${us(signed.p50 - unsigned.p50)}`);
console.log(`two signs and two verifies at the tight-loop cost: ${us(2 * (loop.signUs + loop.verifyUs))}`);
