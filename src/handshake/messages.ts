/**
 * Codec of the three handshake messages of protocol version 2 (PROTOCOL.md
 * §4): JSON text with the seed's vocabulary (`type: "key_exchange"`, hex
 * fields). Decoding is strict, in the order of §4.3: a size limit checked
 * before parsing, JSON, `type`, `version`, `step`, the exact member set,
 * each field, and then the canonical form: a message must be byte for byte
 * what `encodeHandshakeMessage` writes for its values (compact, members in
 * order, plain integers), so duplicate members, `1.0`, escapes and
 * whitespace are all refused the same way. Errors map to stable codes.
 */
import { McpE2eError } from '../errors.js';
import { decodeHex, hasExactKeys } from '../util/assert.js';
import { isNodeId } from '../identity/identity.js';
import {
  FRAMINGS,
  MAX_HANDSHAKE_MESSAGE_BYTES,
  MAX_OFFERED_VERSIONS,
  PROTOCOL_VERSION,
  RANDOM_BYTES,
  STEP3_PLAINTEXT_BYTES,
  type Framing,
} from '../protocol.js';
import { GCM_TAG_BYTES, KEY_BYTES, SIGNATURE_BYTES } from '../crypto/primitives.js';

export const MAC_BYTES = 32;
/** Bytes of step 3's `ciphertext`: the sealed I_i || sig_i || mac_i and the GCM tag. */
export const STEP3_SEALED_BYTES = STEP3_PLAINTEXT_BYTES + GCM_TAG_BYTES;

export interface Offer {
  /** Initiator asks for per-record signatures. */
  signatures: boolean;
  /** Framings the initiator accepts, most preferred first, no duplicates. */
  framings: Framing[];
}

export interface Selection {
  signatures: boolean;
  framing: Framing;
}

export interface InitMessage {
  step: 1;
  /** Every protocol version the initiator supports, strictly descending (bound in the transcript). */
  versions: number[];
  ephemeralKey: Buffer;
  random: Buffer;
  offer: Offer;
}

export interface ResponseMessage {
  step: 2;
  ephemeralKey: Buffer;
  random: Buffer;
  identityKey: Buffer;
  nodeId: string;
  selection: Selection;
  signature: Buffer;
  mac: Buffer;
}

export interface ConfirmMessage {
  step: 3;
  /** AES-256-GCM of I_i || sig_i || mac_i under the step 3 key, tag appended (§5.2). */
  ciphertext: Buffer;
}

export type HandshakeMessage = InitMessage | ResponseMessage | ConfirmMessage;

/** Lowercase hex of a byte string, without copying it first. */
const hex = (b: Uint8Array) => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('hex');

function isFraming(v: unknown): v is Framing {
  return typeof v === 'string' && (FRAMINGS as readonly string[]).includes(v);
}

/**
 * The canonical encoding (PROTOCOL.md §4.1): compact JSON, members in the
 * order of the tables, written as one template. It is byte for byte what
 * `JSON.stringify` gives for these objects. Every interpolated value is a
 * number, a boolean, lowercase hex, a node id or a framing name, so nothing
 * needs escaping; node id, framings and versions are checked here because a
 * caller could pass anything.
 * @throws TypeError for values that have no encoding.
 */
export function encodeHandshakeMessage(m: HandshakeMessage): string {
  const head = `{"type":"key_exchange","version":${PROTOCOL_VERSION},"step":${m.step}`;
  switch (m.step) {
    case 1: {
      if (!m.offer.framings.every(isFraming)) throw new TypeError('"framings" expected json or binary');
      if (!m.versions.every((v) => Number.isInteger(v) && v >= 1 && v <= 255)) throw new TypeError('"versions" expected integers 1..255');
      const framings = m.offer.framings.map((f) => `"${f}"`).join(',');
      return `${head},"versions":[${m.versions.join(',')}],"public_key":"${hex(m.ephemeralKey)}","random":"${hex(m.random)}","options":{"signatures":${m.offer.signatures === true},"framings":[${framings}]}}`;
    }
    case 2:
      if (!isNodeId(m.nodeId) || !isFraming(m.selection.framing)) throw new TypeError('"nodeId" or "framing" is not valid');
      return `${head},"public_key":"${hex(m.ephemeralKey)}","random":"${hex(m.random)}","identity_key":"${hex(m.identityKey)}","node_id":"${m.nodeId}","options":{"signatures":${m.selection.signatures === true},"framing":"${m.selection.framing}"},"signature":"${hex(m.signature)}","mac":"${hex(m.mac)}"}`;
    case 3:
      return `${head},"ciphertext":"${hex(m.ciphertext)}"}`;
  }
}

const MEMBERS: Record<1 | 2 | 3, string[]> = {
  1: ['type', 'version', 'step', 'versions', 'public_key', 'random', 'options'],
  2: ['type', 'version', 'step', 'public_key', 'random', 'identity_key', 'node_id', 'options', 'signature', 'mac'],
  3: ['type', 'version', 'step', 'ciphertext'],
};

function malformed(why: string): McpE2eError {
  return new McpE2eError('ERR_HANDSHAKE_MALFORMED', `malformed handshake message: ${why}`);
}

function bytes(value: unknown, length: number, field: string): Buffer {
  const b = decodeHex(value, length);
  if (!b) throw malformed(`${field} is not ${length} bytes of lowercase hex`);
  return b;
}

function nodeId(value: unknown): string {
  if (!isNodeId(value)) throw malformed('node_id is not 64 lowercase hex digits');
  return value;
}

function versions(value: unknown): number[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_OFFERED_VERSIONS) throw malformed(`versions is not a list of 1 to ${MAX_OFFERED_VERSIONS} versions`);
  let previous = 256;
  for (const v of value) {
    if (!Number.isInteger(v) || v < 1 || v >= previous) throw malformed('versions is not strictly descending integers 1..255');
    previous = v;
  }
  if (!value.includes(PROTOCOL_VERSION)) throw malformed(`versions does not list the message's version ${PROTOCOL_VERSION}`);
  return [...value];
}

function offer(value: unknown): Offer {
  if (!hasExactKeys(value, ['signatures', 'framings'])) throw malformed('options of step 1 have missing or unexpected members');
  const { signatures, framings } = value;
  if (typeof signatures !== 'boolean') throw malformed('options.signatures is not a boolean');
  if (!Array.isArray(framings) || framings.length === 0 || framings.length > FRAMINGS.length) {
    throw new McpE2eError('ERR_HANDSHAKE_OPTIONS', 'options.framings must list 1 to 2 framings');
  }
  if (!framings.every(isFraming) || new Set(framings).size !== framings.length) {
    throw new McpE2eError('ERR_HANDSHAKE_OPTIONS', 'options.framings has an unknown or repeated framing');
  }
  return { signatures, framings: [...framings] };
}

function selection(value: unknown): Selection {
  if (!hasExactKeys(value, ['signatures', 'framing'])) throw malformed('options of step 2 have missing or unexpected members');
  const { signatures, framing } = value;
  if (typeof signatures !== 'boolean') throw malformed('options.signatures is not a boolean');
  if (!isFraming(framing)) throw new McpE2eError('ERR_HANDSHAKE_OPTIONS', 'options.framing is not a known framing');
  return { signatures, framing };
}

/**
 * Decode and strictly validate one handshake message, in the order of
 * PROTOCOL.md §4.3: size, JSON, `type`, `version`, `step`, the exact
 * member set, each field, the canonical form.
 * @throws McpE2eError `ERR_FRAME_TOO_LARGE` (above 4096 bytes),
 *   `ERR_HANDSHAKE_MALFORMED`, `ERR_HANDSHAKE_UNSUPPORTED_VERSION`,
 *   `ERR_HANDSHAKE_OPTIONS`.
 */
export function decodeHandshakeMessage(text: unknown): HandshakeMessage {
  if (typeof text !== 'string') throw malformed('not a text message');
  // Characters are at most 3 UTF-8 bytes each; check before parsing anything.
  if (text.length > MAX_HANDSHAKE_MESSAGE_BYTES || Buffer.byteLength(text, 'utf8') > MAX_HANDSHAKE_MESSAGE_BYTES) {
    throw new McpE2eError('ERR_FRAME_TOO_LARGE', `handshake message larger than ${MAX_HANDSHAKE_MESSAGE_BYTES} bytes`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw malformed('not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw malformed('not a JSON object');
  const o = doc as Record<string, unknown>;
  if (o.type !== 'key_exchange') throw malformed('type is not "key_exchange"');
  if (typeof o.version !== 'number' || !Number.isInteger(o.version)) throw malformed('version is not an integer');
  if (o.version !== PROTOCOL_VERSION) {
    throw new McpE2eError('ERR_HANDSHAKE_UNSUPPORTED_VERSION', `handshake message of protocol version ${o.version} on a version ${PROTOCOL_VERSION} connection`);
  }
  const step = o.step;
  if (step !== 1 && step !== 2 && step !== 3) throw malformed('step is not 1, 2 or 3');
  if (!hasExactKeys(o, MEMBERS[step])) throw malformed(`step ${step} has missing or unexpected members`);
  let msg: HandshakeMessage;
  switch (step) {
    case 1:
      msg = {
        step,
        versions: versions(o.versions),
        ephemeralKey: bytes(o.public_key, KEY_BYTES, 'public_key'),
        random: bytes(o.random, RANDOM_BYTES, 'random'),
        offer: offer(o.options),
      };
      break;
    case 2:
      msg = {
        step,
        ephemeralKey: bytes(o.public_key, KEY_BYTES, 'public_key'),
        random: bytes(o.random, RANDOM_BYTES, 'random'),
        identityKey: bytes(o.identity_key, KEY_BYTES, 'identity_key'),
        nodeId: nodeId(o.node_id),
        selection: selection(o.options),
        signature: bytes(o.signature, SIGNATURE_BYTES, 'signature'),
        mac: bytes(o.mac, MAC_BYTES, 'mac'),
      };
      break;
    case 3:
      msg = { step, ciphertext: bytes(o.ciphertext, STEP3_SEALED_BYTES, 'ciphertext') };
      break;
  }
  if (encodeHandshakeMessage(msg) !== text) throw malformed('not in the canonical encoding (member order, whitespace, number syntax, escapes or duplicate members)');
  return msg;
}
