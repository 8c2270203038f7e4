/**
 * The handshake state machine (PROTOCOL.md §4-5): a SIGMA-style signed
 * ephemeral X25519 exchange in three messages. Pure: text in, text and keys
 * out, no I/O, no clock. Randomness can be injected for golden vectors.
 *
 *   initiator                                   responder
 *   step 1: e_i, r_i, offer          ------>
 *                                    <------    step 2: e_r, r_r, I_r, id_r, selection,
 *                                               sig_r = Sign(I_r, L_rs || H2), mac_r
 *   step 3: I_i, id_i,               ------>
 *   sig_i = Sign(I_i, L_is || H3), mac_i
 *
 * Each signature covers the transcript hash (both ephemeral keys, both
 * randoms, the version, the offer and the selection, the responder's identity
 * key and node id, and for step 3 also the initiator's) under a label distinct
 * per role, which defeats replay and reflection. Each side also proves
 * knowledge of the shared secret with an HMAC over the same hash (the
 * "finished" MAC), which defeats identity misbinding: an attacker relaying a
 * handshake cannot swap in its own identity and signature.
 */
import { McpE2eError } from '../errors.js';
import {
  constantTimeEqual,
  ed25519Verify,
  hkdfSha256,
  hmacSha256,
  importIdentityKey,
  secureRandom,
  sha256,
  x25519,
  x25519FromPrivate,
  type Ed25519PublicKey,
  type X25519Secret,
} from '../crypto/primitives.js';
import { nodeIdFromPublicKey, peerIdentityFromPublicKey, type NodeIdentity, type PeerIdentity } from '../identity/identity.js';
import {
  checkFramings,
  FRAMING_CODE,
  LABEL,
  PROTOCOL_VERSION,
  RANDOM_BYTES,
  SESSION_ID_BYTES,
  type Framing,
  type Role,
} from '../protocol.js';
import {
  decodeHandshakeMessage,
  encodeHandshakeMessage,
  type ConfirmMessage,
  type InitMessage,
  type Offer,
  type ResponseMessage,
  type Selection,
} from './messages.js';
import { takeEphemeralPair } from './ephemeral.js';

export type { Offer, Selection } from './messages.js';

/** Local handshake preferences. */
export interface HandshakeConfig {
  /** Ask for (initiator) or require (responder) per-message signatures. Default true. */
  signatures?: boolean;
  /** Acceptable framings, most preferred first. Default `['binary', 'json']`. */
  framings?: Framing[];
  /** Fixed ephemeral X25519 private key (32 bytes). Tests and vectors only. */
  ephemeralPrivateKey?: Uint8Array;
  /** Fixed 32-byte handshake random. Tests and vectors only. */
  random?: Uint8Array;
}

/** Everything a session needs, produced by a completed handshake. */
export interface HandshakeResult {
  readonly role: Role;
  /** 16 bytes, unique per connection, derived from the transcript. */
  readonly sessionId: Buffer;
  /** H3, the hash of the whole transcript. */
  readonly transcriptHash: Buffer;
  /** The peer's verified identity (its node id checked against its key). Not yet checked against any trust policy. */
  readonly peer: PeerIdentity;
  /** The peer's identity key, checked and imported once. */
  readonly peerKey: Ed25519PublicKey;
  readonly signatures: boolean;
  readonly framing: Framing;
  /** Raw 32-byte AES-256 keys. The session takes ownership and wipes them. */
  readonly sendKey: Buffer;
  readonly recvKey: Buffer;
}

/** What one step produced: a message to send, and/or the finished result. */
export interface HandshakeStep {
  /** Handshake message to send to the peer (JSON text). */
  send?: string;
  /** Present once this side has verified everything. */
  result?: HandshakeResult;
}

type State = 'start' | 'wait_response' | 'wait_init' | 'wait_confirm' | 'done' | 'failed';


/** Transcript bytes up to and including step 2 (PROTOCOL.md §5.1), written into one buffer. */
function transcriptThroughResponse(init: InitMessage, resp: Omit<ResponseMessage, 'signature' | 'mac'>): Buffer {
  const n = init.offer.framings.length;
  const t = Buffer.allocUnsafe(LABEL.TRANSCRIPT.length + 1 + 32 + 32 + 2 + n + 32 + 32 + 32 + 32 + 2);
  let at = LABEL.TRANSCRIPT.copy(t, 0);
  t[at++] = PROTOCOL_VERSION;
  at += init.ephemeralKey.copy(t, at);
  at += init.random.copy(t, at);
  t[at++] = init.offer.signatures ? 1 : 0;
  t[at++] = n;
  for (const f of init.offer.framings) t[at++] = FRAMING_CODE[f];
  at += resp.ephemeralKey.copy(t, at);
  at += resp.random.copy(t, at);
  at += resp.identityKey.copy(t, at);
  at += t.write(resp.nodeId, at, 'hex');
  t[at++] = resp.selection.signatures ? 1 : 0;
  t[at++] = FRAMING_CODE[resp.selection.framing];
  // Every field has a fixed size (checked when decoded); a short one would leave a gap.
  if (at !== t.length) throw new McpE2eError('ERR_HANDSHAKE_MALFORMED', 'transcript field of unexpected size');
  return t;
}

/** The responder's choice from an offer (PROTOCOL.md §4.2). */
export function selectOptions(offer: Offer, local: { signatures: boolean; framings: Framing[] }): Selection {
  const framing = offer.framings.find((f) => local.framings.includes(f));
  if (!framing) {
    throw new McpE2eError('ERR_HANDSHAKE_OPTIONS', `no common framing: peer offers ${offer.framings.join(',')}, we accept ${local.framings.join(',')}`);
  }
  return { signatures: offer.signatures || local.signatures, framing };
}

interface Secrets {
  dh: Buffer;
  h2: Buffer;
  t2: Buffer;
  finishedInitiator: Buffer;
}

function deriveFinishedKeys(dh: Buffer, h2: Buffer): { responder: Buffer; initiator: Buffer } {
  const okm = hkdfSha256(dh, h2, LABEL.FINISHED_KEYS, 64);
  return { responder: okm.subarray(0, 32), initiator: okm.subarray(32, 64) };
}

function deriveSessionKeys(dh: Buffer, h3: Buffer): { i2r: Buffer; r2i: Buffer; sessionId: Buffer } {
  // Views of the HKDF output, which has an ArrayBuffer of its own: copies
  // (Buffer.from) would be slices of Node's shared 8 KiB pool, and a
  // long-lived slice keeps its whole pool chunk alive.
  const okm = hkdfSha256(dh, h3, LABEL.SESSION_KEYS, 64 + SESSION_ID_BYTES);
  return { i2r: okm.subarray(0, 32), r2i: okm.subarray(32, 64), sessionId: okm.subarray(64) };
}

function checkNodeId(identityKey: Buffer, claimed: string): void {
  if (nodeIdFromPublicKey(identityKey) !== claimed) {
    throw new McpE2eError('ERR_HANDSHAKE_NODE_ID_MISMATCH', 'the peer\'s node_id does not derive from its identity key');
  }
}

/**
 * One side of one handshake. Create a new instance per connection.
 * Every method throws McpE2eError on failure, after which the instance is
 * unusable (`ERR_HANDSHAKE_UNEXPECTED_MESSAGE` for any further call).
 */
export class Handshake {
  readonly role: Role;
  #state: State;
  readonly #identity: NodeIdentity;
  readonly #signatures: boolean;
  readonly #framings: Framing[];
  #ephemeral: X25519Secret | undefined;
  readonly #ephemeralPublic: Buffer;
  readonly #random: Buffer;
  #init: InitMessage | undefined;
  #secrets: Secrets | undefined;
  #pending: HandshakeResult | undefined;

  constructor(role: Role, identity: NodeIdentity, config: HandshakeConfig = {}) {
    this.role = role;
    this.#identity = identity;
    this.#signatures = config.signatures ?? true;
    this.#framings = checkFramings(config.framings);
    this.#ephemeral = config.ephemeralPrivateKey ? x25519FromPrivate(config.ephemeralPrivateKey) : takeEphemeralPair();
    this.#ephemeralPublic = this.#ephemeral.publicKey;
    if (config.random !== undefined && config.random.length !== RANDOM_BYTES) {
      throw new RangeError(`"random" expected ${RANDOM_BYTES} bytes, got ${config.random.length}`);
    }
    this.#random = config.random ? Buffer.from(config.random) : secureRandom(RANDOM_BYTES);
    this.#state = role === 'initiator' ? 'start' : 'wait_init';
  }

  /** True once this side has produced its result. */
  get done(): boolean {
    return this.#state === 'done';
  }

  /** Initiator only: the first message (step 1). */
  start(): string {
    return this.#guard('start', () => {
      const init: InitMessage = {
        step: 1,
        ephemeralKey: this.#ephemeralPublic,
        random: this.#random,
        offer: { signatures: this.#signatures, framings: this.#framings },
      };
      this.#init = init;
      this.#state = 'wait_response';
      return encodeHandshakeMessage(init);
    });
  }

  /**
   * Feed one message from the peer. The initiator gets step 3 to send and its
   * result together: the caller checks `result.peer` against its trust policy
   * before sending step 3. The responder gets step 2 after step 1, and its
   * result after step 3.
   */
  receive(text: unknown): HandshakeStep {
    const state = this.#state;
    if (state !== 'wait_response' && state !== 'wait_init' && state !== 'wait_confirm') {
      this.#state = 'failed';
      throw new McpE2eError('ERR_HANDSHAKE_UNEXPECTED_MESSAGE', `handshake message received in state ${state}`);
    }
    return this.#guard(state, () => {
      const msg = decodeHandshakeMessage(text);
      const expected = state === 'wait_init' ? 1 : state === 'wait_response' ? 2 : 3;
      if (msg.step !== expected) {
        throw new McpE2eError('ERR_HANDSHAKE_UNEXPECTED_MESSAGE', `expected handshake step ${expected}, got step ${msg.step}`);
      }
      switch (msg.step) {
        case 1:
          return { send: this.#onInit(msg) };
        case 2:
          return this.#onResponse(msg);
        case 3:
          return { result: this.#onConfirm(msg) };
      }
    });
  }

  #guard<T>(expected: State, fn: () => T): T {
    if (this.#state !== expected) {
      const state = this.#state;
      this.#state = 'failed';
      throw new McpE2eError('ERR_HANDSHAKE_UNEXPECTED_MESSAGE', `handshake step not allowed in state ${state}`);
    }
    try {
      return fn();
    } catch (err) {
      this.#state = 'failed';
      this.#wipe();
      throw err;
    }
  }

  #computeDh(peerEphemeral: Buffer): Buffer {
    if (constantTimeEqual(peerEphemeral, this.#ephemeralPublic)) {
      throw new McpE2eError('ERR_HANDSHAKE_REFLECTION', 'the peer sent our own ephemeral key back');
    }
    const eph = this.#ephemeral!;
    // Forward secrecy: the ephemeral private key is never needed again, whatever the outcome.
    this.#ephemeral = undefined;
    try {
      return x25519(eph, peerEphemeral);
    } finally {
      eph.dispose();
    }
  }

  // Responder, step 1 -> step 2.
  #onInit(init: InitMessage): string {
    const selection = selectOptions(init.offer, { signatures: this.#signatures, framings: this.#framings });
    const dh = this.#computeDh(init.ephemeralKey);
    const body = {
      step: 2 as const,
      ephemeralKey: this.#ephemeralPublic,
      random: this.#random,
      identityKey: this.#identity.publicKey,
      nodeId: this.#identity.nodeId,
      selection,
    };
    const t2 = transcriptThroughResponse(init, body);
    const h2 = sha256(t2);
    const fk = deriveFinishedKeys(dh, h2);
    const signature = this.#identity.sign(LABEL.RESPONDER_SIGNATURE, h2);
    const mac = hmacSha256(fk.responder, LABEL.RESPONDER_FINISHED, h2);
    this.#init = init;
    this.#secrets = { dh, h2, t2, finishedInitiator: Buffer.from(fk.initiator) };
    fk.responder.fill(0);
    this.#state = 'wait_confirm';
    return encodeHandshakeMessage({ ...body, signature, mac });
  }

  // Initiator, step 2 -> step 3 + result.
  #onResponse(resp: ResponseMessage): HandshakeStep {
    const init = this.#init!;
    const sel = resp.selection;
    // The selection must be one the offer allowed: never fewer signatures than asked for.
    if (!init.offer.framings.includes(sel.framing) || (init.offer.signatures && !sel.signatures)) {
      throw new McpE2eError('ERR_HANDSHAKE_OPTIONS', 'the responder selected options our offer did not allow');
    }
    if (constantTimeEqual(resp.random, init.random)) {
      throw new McpE2eError('ERR_HANDSHAKE_REFLECTION', 'the peer sent our own random back');
    }
    checkNodeId(resp.identityKey, resp.nodeId);
    const peerKey = importIdentityKey(resp.identityKey);
    const dh = this.#computeDh(resp.ephemeralKey);
    const t2 = transcriptThroughResponse(init, resp);
    const h2 = sha256(t2);
    if (!ed25519Verify(peerKey, Buffer.concat([LABEL.RESPONDER_SIGNATURE, h2]), resp.signature)) {
      throw new McpE2eError('ERR_HANDSHAKE_BAD_SIGNATURE', 'the responder\'s handshake signature does not verify');
    }
    const fk = deriveFinishedKeys(dh, h2);
    const expectedMac = hmacSha256(fk.responder, LABEL.RESPONDER_FINISHED, h2);
    if (!constantTimeEqual(expectedMac, resp.mac)) {
      throw new McpE2eError('ERR_HANDSHAKE_BAD_MAC', 'the responder\'s finished MAC does not verify');
    }
    const h3 = sha256(t2, this.#identity.publicKey, Buffer.from(this.#identity.nodeId, 'hex'));
    const signature = this.#identity.sign(LABEL.INITIATOR_SIGNATURE, h3);
    const mac = hmacSha256(fk.initiator, LABEL.INITIATOR_FINISHED, h3);
    fk.responder.fill(0);
    fk.initiator.fill(0);
    const keys = deriveSessionKeys(dh, h3);
    dh.fill(0);
    const result: HandshakeResult = {
      role: 'initiator',
      sessionId: keys.sessionId,
      transcriptHash: h3,
      peer: peerIdentityFromPublicKey(resp.identityKey),
      peerKey,
      signatures: sel.signatures,
      framing: sel.framing,
      sendKey: keys.i2r,
      recvKey: keys.r2i,
    };
    this.#state = 'done';
    return {
      send: encodeHandshakeMessage({ step: 3, identityKey: this.#identity.publicKey, nodeId: this.#identity.nodeId, signature, mac }),
      result,
    };
  }

  // Responder, step 3 -> result.
  #onConfirm(confirm: ConfirmMessage): HandshakeResult {
    const s = this.#secrets!;
    checkNodeId(confirm.identityKey, confirm.nodeId);
    const peerKey = importIdentityKey(confirm.identityKey);
    const h3 = sha256(s.t2, confirm.identityKey, Buffer.from(confirm.nodeId, 'hex'));
    if (!ed25519Verify(peerKey, Buffer.concat([LABEL.INITIATOR_SIGNATURE, h3]), confirm.signature)) {
      throw new McpE2eError('ERR_HANDSHAKE_BAD_SIGNATURE', 'the initiator\'s handshake signature does not verify');
    }
    const expectedMac = hmacSha256(s.finishedInitiator, LABEL.INITIATOR_FINISHED, h3);
    if (!constantTimeEqual(expectedMac, confirm.mac)) {
      throw new McpE2eError('ERR_HANDSHAKE_BAD_MAC', 'the initiator\'s finished MAC does not verify');
    }
    const keys = deriveSessionKeys(s.dh, h3);
    const sel = selectOptions(this.#init!.offer, { signatures: this.#signatures, framings: this.#framings });
    this.#wipe();
    this.#state = 'done';
    return {
      role: 'responder',
      sessionId: keys.sessionId,
      transcriptHash: h3,
      peer: peerIdentityFromPublicKey(confirm.identityKey),
      peerKey,
      signatures: sel.signatures,
      framing: sel.framing,
      sendKey: keys.r2i,
      recvKey: keys.i2r,
    };
  }

  #wipe(): void {
    this.#ephemeral?.dispose();
    this.#ephemeral = undefined;
    if (this.#secrets) {
      this.#secrets.dh.fill(0);
      this.#secrets.finishedInitiator.fill(0);
      this.#secrets = undefined;
    }
  }
}
