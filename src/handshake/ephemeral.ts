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
import { generateX25519, type X25519Secret } from '../crypto/primitives.js';

/** Pairs kept ready. Small: each is a private key held in memory until used. */
export const EPHEMERAL_POOL_SIZE = 4;

const ready: X25519Secret[] = [];
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
  // Not unref'd: with an unref'd refill Immediate, a program that runs
  // handshakes and awaits setImmediate() in turns was seen to stay blocked
  // in Node 20's poll phase for good (2 runs of 8 of a micro-benchmark,
  // 1 of 20 of a loop of takeEphemeralPair; never without unref, and not
  // reproducible on demand, so no test pins it). A pending refill keeps a
  // process alive for at most EPHEMERAL_POOL_SIZE turns of the event loop,
  // a fraction of a millisecond.
  setImmediate(refill);
}

/** A fresh ephemeral pair, never handed out before. */
export function takeEphemeralPair(): X25519Secret {
  const pair = ready.pop() ?? generateX25519();
  scheduleRefill();
  return pair;
}
