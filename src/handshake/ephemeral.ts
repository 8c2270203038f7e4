/**
 * Ephemeral X25519 key pairs made ahead of time (RFC 7748), so a handshake
 * does not wait for key generation (~45 µs of the responder's critical path
 * and the initiator's). A few pairs are generated in the background, on
 * libuv's thread pool (`generateKeyPair`), and each is handed out exactly
 * once and dropped from the pool: forward secrecy is the same as generating
 * the pair inside the handshake. When the pool is empty (a burst of
 * handshakes), a pair is generated synchronously as before.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { generateX25519, rawPublicKey } from '../crypto/primitives.js';

/** Pairs kept ready. Small: each is a private key held in memory until used. */
export const EPHEMERAL_POOL_SIZE = 8;

interface EphemeralPair {
  privateKey: KeyObject;
  /** Raw 32-byte public key. */
  publicKey: Buffer;
}

const ready: EphemeralPair[] = [];
let generating = 0;

function refill(): void {
  while (ready.length + generating < EPHEMERAL_POOL_SIZE) {
    generating++;
    generateKeyPair('x25519', undefined, (err, publicKey, privateKey) => {
      generating--;
      // A failure here only means the next handshake generates its own pair.
      if (!err) ready.push({ privateKey, publicKey: rawPublicKey(publicKey) });
    });
  }
}

/** A fresh ephemeral pair, never handed out before. */
export function takeEphemeralPair(): EphemeralPair {
  const pair = ready.pop() ?? generateX25519();
  refill();
  return pair;
}
