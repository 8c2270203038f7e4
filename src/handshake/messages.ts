/**
 * Codec of the three handshake messages (PROTOCOL.md §4): JSON text with the
 * seed's vocabulary (`type: "key_exchange"`, hex fields). Decoding is strict:
 * exact key sets, exact types, lowercase hex of exact length, a size limit
 * checked before parsing. Errors map to stable codes.
 */
import { McpE2eError } from '../errors.js';
import { decodeHex, hasExactKeys } from '../util/assert.js';
import { isNodeId } from '../identity/identity.js';
import { FRAMINGS, MAX_HANDSHAKE_MESSAGE_BYTES, PROTOCOL_VERSION, RANDOM_BYTES, type Framing } from '../protocol.js';
import { KEY_BYTES, SIGNATURE_BYTES } from '../crypto/primitives.js';

const MAC_BYTES = 32;

export interface Offer {
  /** Initiator asks for per-message signatures. */
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
  identityKey: Buffer;
  nodeId: string;
  signature: Buffer;
  mac: Buffer;
}

export type HandshakeMessage = InitMessage | ResponseMessage | ConfirmMessage;

/** Lowercase hex of a byte string, without copying it first. */
const hex = (b: Uint8Array) => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('hex');

/**
 * Compact JSON, members in the order of PROTOCOL.md §4.1: byte for byte what
 * `JSON.stringify` gives for these objects (the golden vectors check it), but
 * written as one template. Every interpolated value is a number, a boolean,
 * lowercase hex, a node id or a framing name, so nothing needs escaping; the
 * node id and the framings are checked here because a caller could pass
 * anything.
 */
export function encodeHandshakeMessage(m: HandshakeMessage): string {
  const head = `{"type":"key_exchange","version":${PROTOCOL_VERSION},"step":${m.step}`;
  switch (m.step) {
    case 1: {
      if (!m.offer.framings.every(isFraming)) throw new TypeError('"framings" expected json or binary');
      const framings = m.offer.framings.map((f) => `"${f}"`).join(',');
      return `${head},"public_key":"${hex(m.ephemeralKey)}","random":"${hex(m.random)}","options":{"signatures":${m.offer.signatures === true},"framings":[${framings}]}}`;
    }
    case 2:
      if (!isNodeId(m.nodeId) || !isFraming(m.selection.framing)) throw new TypeError('"nodeId" or "framing" is not valid');
      return `${head},"public_key":"${hex(m.ephemeralKey)}","random":"${hex(m.random)}","identity_key":"${hex(m.identityKey)}","node_id":"${m.nodeId}","options":{"signatures":${m.selection.signatures === true},"framing":"${m.selection.framing}"},"signature":"${hex(m.signature)}","mac":"${hex(m.mac)}"}`;
    case 3:
      if (!isNodeId(m.nodeId)) throw new TypeError('"nodeId" is not a node id');
      return `${head},"identity_key":"${hex(m.identityKey)}","node_id":"${m.nodeId}","signature":"${hex(m.signature)}","mac":"${hex(m.mac)}"}`;
  }
}

const KEYS: Record<1 | 2 | 3, string[]> = {
  1: ['type', 'version', 'step', 'public_key', 'random', 'options'],
  2: ['type', 'version', 'step', 'public_key', 'random', 'identity_key', 'node_id', 'options', 'signature', 'mac'],
  3: ['type', 'version', 'step', 'identity_key', 'node_id', 'signature', 'mac'],
};

function malformed(why: string): McpE2eError {
  return new McpE2eError('ERR_HANDSHAKE_MALFORMED', `malformed handshake message: ${why}`);
}

function key(value: unknown, field: string): Buffer {
  if (typeof value !== 'string') throw malformed(`${field} is not a string`);
  if (value.length !== KEY_BYTES * 2) {
    throw new McpE2eError('ERR_HANDSHAKE_BAD_KEY', `${field}: expected ${KEY_BYTES} bytes, got ${value.length / 2}`);
  }
  const bytes = decodeHex(value, KEY_BYTES);
  if (!bytes) throw malformed(`${field} is not lowercase hex`);
  return bytes;
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

function isFraming(v: unknown): v is Framing {
  return typeof v === 'string' && (FRAMINGS as readonly string[]).includes(v);
}

function offer(value: unknown): Offer {
  if (!hasExactKeys(value, ['signatures', 'framings'])) throw malformed('options of step 1 have unexpected fields');
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
  if (!hasExactKeys(value, ['signatures', 'framing'])) throw malformed('options of step 2 have unexpected fields');
  const { signatures, framing } = value;
  if (typeof signatures !== 'boolean') throw malformed('options.signatures is not a boolean');
  if (!isFraming(framing)) throw new McpE2eError('ERR_HANDSHAKE_OPTIONS', 'options.framing is not a known framing');
  return { signatures, framing };
}

/**
 * Decode and strictly validate one handshake message. Checks, in order:
 * size, JSON, `type`, `version`, `step`, the exact key set of that step,
 * then each field.
 */
export function decodeHandshakeMessage(text: unknown): HandshakeMessage {
  if (typeof text !== 'string') throw malformed('not a text message');
  // Characters are at most 3 UTF-8 bytes each here; check before parsing anything.
  if (text.length > MAX_HANDSHAKE_MESSAGE_BYTES || Buffer.byteLength(text, 'utf8') > MAX_HANDSHAKE_MESSAGE_BYTES) {
    throw malformed(`larger than ${MAX_HANDSHAKE_MESSAGE_BYTES} bytes`);
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
    throw new McpE2eError('ERR_HANDSHAKE_UNSUPPORTED_VERSION', `unsupported protocol version ${o.version}; this node speaks ${PROTOCOL_VERSION}`);
  }
  const step = o.step;
  if (step !== 1 && step !== 2 && step !== 3) throw malformed('step is not 1, 2 or 3');
  if (!hasExactKeys(o, KEYS[step])) throw malformed(`step ${step} has missing or unexpected fields`);
  switch (step) {
    case 1:
      return { step, ephemeralKey: key(o.public_key, 'public_key'), random: bytes(o.random, RANDOM_BYTES, 'random'), offer: offer(o.options) };
    case 2:
      return {
        step,
        ephemeralKey: key(o.public_key, 'public_key'),
        random: bytes(o.random, RANDOM_BYTES, 'random'),
        identityKey: key(o.identity_key, 'identity_key'),
        nodeId: nodeId(o.node_id),
        selection: selection(o.options),
        signature: bytes(o.signature, SIGNATURE_BYTES, 'signature'),
        mac: bytes(o.mac, MAC_BYTES, 'mac'),
      };
    case 3:
      return {
        step,
        identityKey: key(o.identity_key, 'identity_key'),
        nodeId: nodeId(o.node_id),
        signature: bytes(o.signature, SIGNATURE_BYTES, 'signature'),
        mac: bytes(o.mac, MAC_BYTES, 'mac'),
      };
  }
}
