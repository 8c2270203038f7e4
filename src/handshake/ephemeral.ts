/**
 * Ephemeral X25519 key pairs (RFC 7748) made ahead of time, so a handshake
 * does not wait for key generation (~50 µs on the responder's critical path
 * and the initiator's). After each handshake takes a pair, a new one is
 * generated in a `setImmediate`, i.e. after the handshake message has been
 * sent. Each pair is handed out exactly once and dropped from the pool:
 * forward secrecy is the same as generating it inside the handshake. When the
 * pool is empty (a burst of handshakes), a pair is generated on the spot.
 *
 * Not `generateKeyPair` on the thread pool: its dispatch alone costs ~25 µs
 * of main-thread time per pair (measured), half a synchronous generation,
 * and adds the generation itself on another core: less CPU left for a burst
 * of connections on a 2-core machine.
 */
import type { KeyObject } from 'node:crypto';
import { generateX25519 } from '../crypto/primitives.js';

/** Pairs kept ready. Small: each is a private key held in memory until used. */
export const EPHEMERAL_POOL_SIZE = 4;

interface EphemeralPair {
  privateKey: KeyObject;
  /** Raw 32-byte public key. */
  publicKey: Buffer;
}

const ready: EphemeralPair[] = [];
let refillScheduled = false;

/** One pair per turn of the event loop, so a refill never holds up I/O for long. */
function refill(): void {
  refillScheduled = false;
  if (ready.length < EPHEMERAL_POOL_SIZE) ready.push(generateX25519());
  if (ready.length < EPHEMERAL_POOL_SIZE) scheduleRefill();
}

function scheduleRefill(): void {
  if (refillScheduled) return;
  refillScheduled = true;
  // unref: a pending refill never keeps a process alive.
  setImmediate(refill).unref();
}

/** A fresh ephemeral pair, never handed out before. */
export function takeEphemeralPair(): EphemeralPair {
  const pair = ready.pop() ?? generateX25519();
  scheduleRefill();
  return pair;
}
