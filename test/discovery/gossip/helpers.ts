/**
 * Helpers for the gossip tests: identities and records made quickly, and a
 * synchronous in-process exchange of engine steps (no loss, no latency).
 */
import { NodeIdentity } from '../../../src/identity/identity.js';
import { createPeerRecord, type PeerRecord } from '../../../src/discovery/record.js';
import type { GossipEngine, GossipEvent, GossipStep } from '../../../src/discovery/gossip/engine.js';
import { seededRandom } from '../../../bench/gossip/network.js';

export const NOW = 1_800_000_000_000;

/** A deterministic identity from a number. */
export function identityOf(i: number): NodeIdentity {
  const seed = Buffer.alloc(32);
  seed.writeUInt32BE(i + 1, 0);
  seed.write('gossip-test', 4);
  return NodeIdentity.fromPrivateKey(seed);
}

/** A valid record of `identity` with `seq`, issued at `now`, living an hour. */
export function recordOf(identity: NodeIdentity, seq: number, now = NOW, lifetimeMs = 3_600_000): PeerRecord {
  return createPeerRecord(identity, {
    seq,
    issuedAtMs: now,
    expiresAtMs: now + lifetimeMs,
    addresses: [`ws://127.0.0.1:${10_000 + (seq % 50_000)}`],
    protocolVersions: [1],
  });
}

/** A seeded uniform [0, 1) generator (the simulator's). */
export const seeded = seededRandom;

/**
 * Deliver every message of `steps` (and of the answers they cause) between
 * `engines` (by node id), in order, until none is left. Messages are sent as
 * JSON text and parsed again, as the control channel does. Returns the
 * events and the number of messages and bytes delivered.
 */
export function pump(engines: Map<string, GossipEngine>, from: string, step: GossipStep, now: number): { events: Array<GossipEvent & { at: string }>; messages: number; bytes: number } {
  const queue: Array<[string, string, string]> = step.send.map((o) => [from, o.peer, JSON.stringify(o.message)]);
  const events: Array<GossipEvent & { at: string }> = step.events.map((e) => ({ ...e, at: from }));
  let messages = 0;
  let bytes = 0;
  while (queue.length > 0) {
    const [src, dst, text] = queue.shift()!;
    const engine = engines.get(dst);
    if (!engine) continue;
    messages++;
    bytes += Buffer.byteLength(text);
    const s = engine.receive(src, JSON.parse(text), now);
    for (const e of s.events) events.push({ ...e, at: dst });
    for (const o of s.send) queue.push([dst, o.peer, JSON.stringify(o.message)]);
  }
  return { events, messages, bytes };
}
