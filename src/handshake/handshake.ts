/**
 * The handshake state machine of protocol version 2 (PROTOCOL.md §4-5): a
 * SIGMA-I style signed ephemeral X25519 exchange in three messages. Pure:
 * text in, text and keys out, no I/O, no clock. Randomness can be injected
 * for golden vectors.
 *
 *   initiator                                   responder
 *   step 1: versions, e_i, r_i, offer  ----->
 *                                      <-----   step 2: e_r, r_r, I_r, id_r, selection,
 *                                               sig_r = Sign(I_r, L_rs || H2), mac_r
 *   step 3: AEAD(k_3, I_i || sig_i || mac_i)  ----->
 *           sig_i = Sign(I_i, L_is || H3), mac_i
 *
 * Each signature covers the transcript hash (both ephemeral keys, both
 * randoms, the versions the initiator supports, the offer and the selection,
 * the responder's identity key and node id, and for step 3 also the
 * initiator's key) under a label distinct per role, which defeats replay,
 * reflection and version downgrade. Each side also proves knowledge of the
 * shared secret with an HMAC over the same hash (the "finished" MAC), which
 * defeats identity misbinding. Step 3 travels encrypted under a key from the
 * shared secret, so a passive observer never learns the initiator's identity;
 * the initiator reveals it only after authenticating the responder.
 */
import { McpE2eError } from '../errors.js';
import {
  aesGcmEncrypt,
  aesGcmOpen,
  aesKey,
  constantTimeEqual,
  ed25519Verify,
  GCM_NONCE_BYTES,
  hkdfSha256,
  hmacSha256,
  importIdentityKey,
  KEY_BYTES,
  secureRandom,
  sha256,
  SIGNATURE_BYTES,
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
  SUPPORTED_VERSIONS,
  type Framing,
  type Role,
} from '../protocol.js';
import {
  decodeHandshakeMessage,
  encodeHandshakeMessage,
  MAC_BYTES,
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
  /** Ask for (initiator) or require (responder) per-record signatures. Default true. */
  signatures?: boolean;
  /** Acceptable framings, most preferred first. Default `['binary', 'json']`. */
  framings?: Framing[];
  /** Fixed ephemeral X25519 private key (32 bytes). Tests and vectors only. */
  ephemeralPrivateKey?: Uint8Array;
  /** Fixed 32-byte handshake random. Tests and vectors only. */
  random?: Uint8Array;
  /**
   * Protocol versions this side supports, strictly descending, including
   * PROTOCOL_VERSION. Default `SUPPORTED_VERSIONS`. Tests and vectors only
   * (they play a node that also speaks a later version).
   */
  versions?: number[];
}

/** Everything a session needs, produced by a completed handshake. */
export interface HandshakeResult {
  readonly role: Role;
  /** 16 bytes, unique per connection, derived from the transcript. */
  readonly sessionId: Buffer;
  /** H3, the hash of the whole transcript. */
  readonly transcriptHash: Buffer;
  /** The peer's verified identity (its node id derived from its key). Not yet checked against any trust policy. */
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

/** The 12-byte nonce of step 3: its key is used for that one message only. */
const STEP3_NONCE = Buffer.alloc(GCM_NONCE_BYTES);
const EMPTY_SALT = Buffer.alloc(0);

/** Transcript bytes up to and including step 2 (PROTOCOL.md §5.1), written into one buffer. */
function transcriptThroughResponse(init: InitMessage, resp: Omit<ResponseMessage, 'signature' | 'mac'>): Buffer {
  const nv = init.versions.length;
  const n = init.offer.framings.length;
  const t = Buffer.allocUnsafe(LABEL.TRANSCRIPT.length + 1 + 1 + nv + 32 + 32 + 2 + n + 32 + 32 + 32 + 32 + 2);
  let at = LABEL.TRANSCRIPT.copy(t, 0);
  t[at++] = PROTOCOL_VERSION;
  t[at++] = nv;
  for (const v of init.versions) t[at++] = v;
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

/** The handshake keys (PROTOCOL.md §5.2): both finished keys and the step 3 key, views of one HKDF output. */
function deriveHandshakeKeys(dh: Buffer, h2: Buffer): { responder: Buffer; initiator: Buffer; step3: Buffer; all: Buffer } {
  const all = hkdfSha256(dh, EMPTY_SALT, Buffer.concat([LABEL.HANDSHAKE_KEYS, h2]), 96);
  return { responder: all.subarray(0, 32), initiator: all.subarray(32, 64), step3: all.subarray(64, 96), all };
}

function deriveSessionKeys(dh: Buffer, h3: Buffer): { i2r: Buffer; r2i: Buffer; sessionId: Buffer } {
  // Views of the HKDF output, which has an ArrayBuffer of its own: copies
  // (Buffer.from) would be slices of Node's shared 8 KiB pool, and a
  // long-lived slice keeps its whole pool chunk alive.
  const okm = hkdfSha256(dh, EMPTY_SALT, Buffer.concat([LABEL.SESSION_KEYS, h3]), 64 + SESSION_ID_BYTES);
  return { i2r: okm.subarray(0, 32), r2i: okm.subarray(32, 64), sessionId: okm.subarray(64) };
}

/** The highest version both lists contain, or undefined. */
function highestCommon(a: readonly number[], b: readonly number[]): number | undefined {
  let best: number | undefined;
  for (const v of a) if (b.includes(v) && (best === undefined || v > best)) best = v;
  return best;
}

function checkVersions(versions: number[]): number[] {
  const ok = versions.length > 0 && versions.includes(PROTOCOL_VERSION) && versions.every((v, i) => Number.isInteger(v) && v >= 1 && v <= 255 && (i === 0 || v < versions[i - 1]!));
  if (!ok) throw new RangeError(`"versions" expected strictly descending integers 1..255 including ${PROTOCOL_VERSION}`);
  return [...versions];
}

interface Secrets {
  dh: Buffer;
  h2: Buffer;
  t2: Buffer;
  /** The whole handshake-keys output (fk_r, fk_i, k_3), wiped at once. */
  keys: Buffer;
  finishedInitiator: Buffer;
  step3Key: Buffer;
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
  readonly #versions: number[];
  #ephemeral: X25519Secret | undefined;
  readonly #ephemeralPublic: Buffer;
  readonly #random: Buffer;
  #init: InitMessage | undefined;
  #secrets: Secrets | undefined;

  constructor(role: Role, identity: NodeIdentity, config: HandshakeConfig = {}) {
    this.role = role;
    this.#identity = identity;
    this.#signatures = config.signatures ?? true;
    this.#framings = checkFramings(config.framings);
    this.#versions = checkVersions(config.versions ?? [...SUPPORTED_VERSIONS]);
    if (config.random !== undefined && config.random.length !== RANDOM_BYTES) {
      throw new RangeError(`"random" expected ${RANDOM_BYTES} bytes, got ${config.random.length}`);
    }
    this.#ephemeral = config.ephemeralPrivateKey ? x25519FromPrivate(config.ephemeralPrivateKey) : takeEphemeralPair();
    this.#ephemeralPublic = this.#ephemeral.publicKey;
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
        versions: this.#versions,
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
      this.#wipe();
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
      this.#wipe();
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
    // The connection's version must be the highest both support: a stripped
    // subprotocol offer is detected here, and an edited `versions` list by
    // the initiator's signature check (it is in T2).
    const best = highestCommon(init.versions, this.#versions);
    if (best !== PROTOCOL_VERSION) {
      throw new McpE2eError('ERR_HANDSHAKE_DOWNGRADE', `the initiator supports version ${best} too, yet this connection is version ${PROTOCOL_VERSION} (downgrade)`);
    }
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
    const keys = deriveHandshakeKeys(dh, h2);
    const signature = this.#identity.sign(LABEL.RESPONDER_SIGNATURE, h2);
    const mac = hmacSha256(keys.responder, LABEL.RESPONDER_FINISHED, h2);
    keys.responder.fill(0);
    this.#init = init;
    this.#secrets = { dh, h2, t2, keys: keys.all, finishedInitiator: keys.initiator, step3Key: keys.step3 };
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
    if (nodeIdFromPublicKey(resp.identityKey) !== resp.nodeId) {
      throw new McpE2eError('ERR_HANDSHAKE_NODE_ID_MISMATCH', 'the responder\'s node_id does not derive from its identity key');
    }
    const peerKey = importIdentityKey(resp.identityKey);
    const dh = this.#computeDh(resp.ephemeralKey);
    const t2 = transcriptThroughResponse(init, resp);
    const h2 = sha256(t2);
    const keys = deriveHandshakeKeys(dh, h2);
    try {
      // The MAC first: cheap, and it needs the shared secret (an attacker must do the X25519).
      if (!constantTimeEqual(hmacSha256(keys.responder, LABEL.RESPONDER_FINISHED, h2), resp.mac)) {
        throw new McpE2eError('ERR_HANDSHAKE_BAD_MAC', 'the responder\'s finished MAC does not verify');
      }
      if (!ed25519Verify(peerKey, Buffer.concat([LABEL.RESPONDER_SIGNATURE, h2]), resp.signature)) {
        throw new McpE2eError('ERR_HANDSHAKE_BAD_SIGNATURE', 'the responder\'s handshake signature does not verify');
      }
      const h3 = sha256(t2, this.#identity.publicKey);
      const identity = Buffer.concat([
        this.#identity.publicKey,
        this.#identity.sign(LABEL.INITIATOR_SIGNATURE, h3),
        hmacSha256(keys.initiator, LABEL.INITIATOR_FINISHED, h3),
      ]);
      const { ciphertext, tag } = aesGcmEncrypt(aesKey(keys.step3), STEP3_NONCE, h2, [identity]);
      identity.fill(0);
      const session = deriveSessionKeys(dh, h3);
      const result: HandshakeResult = {
        role: 'initiator',
        sessionId: session.sessionId,
        transcriptHash: h3,
        peer: peerIdentityFromPublicKey(resp.identityKey),
        peerKey,
        signatures: sel.signatures,
        framing: sel.framing,
        sendKey: session.i2r,
        recvKey: session.r2i,
      };
      this.#state = 'done';
      return { send: encodeHandshakeMessage({ step: 3, ciphertext: Buffer.concat([...ciphertext, tag]) }), result };
    } finally {
      keys.all.fill(0);
      dh.fill(0);
    }
  }

  // Responder, step 3 -> result.
  #onConfirm(confirm: ConfirmMessage): HandshakeResult {
    const s = this.#secrets!;
    let plain: Buffer;
    try {
      plain = aesGcmOpen(aesKey(s.step3Key), STEP3_NONCE, s.h2, confirm.ciphertext);
    } catch (cause) {
      throw new McpE2eError('ERR_HANDSHAKE_BAD_MAC', 'step 3 does not decrypt under the handshake key', { cause });
    }
    try {
      const identityKey = plain.subarray(0, KEY_BYTES);
      const signature = plain.subarray(KEY_BYTES, KEY_BYTES + SIGNATURE_BYTES);
      const mac = plain.subarray(KEY_BYTES + SIGNATURE_BYTES, KEY_BYTES + SIGNATURE_BYTES + MAC_BYTES);
      const peerKey = importIdentityKey(identityKey);
      const h3 = sha256(s.t2, identityKey);
      if (!constantTimeEqual(hmacSha256(s.finishedInitiator, LABEL.INITIATOR_FINISHED, h3), mac)) {
        throw new McpE2eError('ERR_HANDSHAKE_BAD_MAC', 'the initiator\'s finished MAC does not verify');
      }
      if (!ed25519Verify(peerKey, Buffer.concat([LABEL.INITIATOR_SIGNATURE, h3]), signature)) {
        throw new McpE2eError('ERR_HANDSHAKE_BAD_SIGNATURE', 'the initiator\'s handshake signature does not verify');
      }
      const keys = deriveSessionKeys(s.dh, h3);
      const sel = selectOptions(this.#init!.offer, { signatures: this.#signatures, framings: this.#framings });
      this.#wipe();
      this.#state = 'done';
      return {
        role: 'responder',
        sessionId: keys.sessionId,
        transcriptHash: h3,
        peer: peerIdentityFromPublicKey(identityKey),
        peerKey,
        signatures: sel.signatures,
        framing: sel.framing,
        sendKey: keys.r2i,
        recvKey: keys.i2r,
      };
    } finally {
      plain.fill(0);
    }
  }

  #wipe(): void {
    this.#ephemeral?.dispose();
    this.#ephemeral = undefined;
    if (this.#secrets) {
      this.#secrets.dh.fill(0);
      this.#secrets.keys.fill(0);
      this.#secrets = undefined;
    }
  }
}
