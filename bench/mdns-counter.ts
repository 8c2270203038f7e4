/**
 * A passive listener for the mDNS benchmark, run inside a namespace on the
 * test segment: joins 224.0.0.251 on the given address, counts every packet
 * for `--seconds`, then prints one JSON line: packets by sender and by kind
 * (query / response / undecodable). Sends nothing.
 *
 *   node mdns-counter.js --address A --seconds S
 */
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { decode } from 'dns-packet';

const { values } = parseArgs({ options: { address: { type: 'string' }, seconds: { type: 'string', default: '60' } } });
const bySender: Record<string, { query: number; response: number; other: number; bytes: number }> = {};
const socket = createSocket({ type: 'udp4', reuseAddr: true });
socket.on('message', (msg, rinfo) => {
  const s = (bySender[rinfo.address] ??= { query: 0, response: 0, other: 0, bytes: 0 });
  s.bytes += msg.length;
  try {
    s[decode(msg).type === 'query' ? 'query' : 'response']++;
  } catch {
    s.other++;
  }
});
socket.bind(5353, '0.0.0.0', () => {
  socket.addMembership('224.0.0.251', values.address!);
  process.stdout.write(JSON.stringify({ event: 'counting' }) + '\n');
  setTimeout(() => {
    process.stdout.write(JSON.stringify({ event: 'counted', seconds: Number(values.seconds), bySender }) + '\n');
    process.exit(0);
  }, Number(values.seconds) * 1000);
});
