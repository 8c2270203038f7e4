/**
 * The one place that touches `ws` internals. `ws` fixes `maxPayload` when a
 * socket is created and offers no public way to change it; we need a tiny
 * limit (MAX_HANDSHAKE_MESSAGE_BYTES) until the peer is authenticated and the
 * session limit afterwards, so an unauthenticated peer can never make us
 * buffer a large message. ws 8 keeps the limit in `ws._receiver._maxPayload`
 * (lib/receiver.js, checked in `haveLength()` against each frame's declared
 * length before any payload is buffered, and again per decompressed chunk).
 *
 * The receiver reads the field for every frame header, so a change made
 * synchronously inside a 'message' handler applies to the very next frame.
 * If a future `ws` moves the field, `setMaxPayload` throws instead of
 * silently leaving the wrong limit in place (fail closed); the transport
 * tests pin the behaviour on the installed version.
 */
import type { WebSocket } from 'ws';

interface ReceiverInternals {
  _maxPayload: number;
}

function receiverOf(ws: WebSocket): ReceiverInternals {
  const receiver = (ws as unknown as { _receiver?: unknown })._receiver;
  if (typeof receiver !== 'object' || receiver === null || typeof (receiver as { _maxPayload?: unknown })._maxPayload !== 'number') {
    throw new Error('unsupported ws version: ws._receiver._maxPayload not found (cannot adjust the message size limit)');
  }
  return receiver as ReceiverInternals;
}

/**
 * Set the largest message (bytes) `ws` will accept from now on. Larger frames
 * are refused by `ws` with close code 1009 before their payload is buffered.
 * @throws RangeError unless `bytes` is a positive integer (0 would mean "no limit" to ws).
 * @throws Error when the installed `ws` keeps the limit elsewhere.
 */
export function setMaxPayload(ws: WebSocket, bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 1) throw new RangeError(`"bytes" expected a positive integer, got ${bytes}`);
  receiverOf(ws)._maxPayload = bytes;
}

/** The message size limit `ws` currently enforces on `ws` (bytes). */
export function getMaxPayload(ws: WebSocket): number {
  return receiverOf(ws)._maxPayload;
}

/** The parts of a net.Socket that write coalescing uses. */
export interface CorkableSocket {
  cork(): void;
  uncork(): void;
  readonly destroyed: boolean;
}

/**
 * The TCP (or TLS) socket under `ws` (`ws._socket`, set once the connection
 * is open), for corking. Undefined when the installed `ws` keeps it
 * elsewhere: writes then simply go out uncoalesced (a performance
 * optimisation, not a security property, so failing open is fine here).
 */
export function socketOf(ws: WebSocket): CorkableSocket | undefined {
  const socket = (ws as unknown as { _socket?: unknown })._socket;
  if (typeof socket !== 'object' || socket === null) return undefined;
  const s = socket as Partial<CorkableSocket>;
  return typeof s.cork === 'function' && typeof s.uncork === 'function' ? (socket as CorkableSocket) : undefined;
}

interface FragmentInternals {
  _maxFragments: number;
}

/**
 * Set the most fragments (frames) one message may arrive in, from the next
 * message on. ws (8.21 and later) keeps a Buffer view per fragment, about
 * 128 bytes of heap each whatever the payload, so before authentication we
 * allow only a few (an honest peer sends each handshake message in one
 * frame) and ws's own default afterwards.
 * @throws RangeError unless `count` is a positive integer (0 would mean "no limit" to ws).
 * @throws Error when the installed `ws` has no such limit.
 */
export function setMaxFragments(ws: WebSocket, count: number): void {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`"count" expected a positive integer, got ${count}`);
  const receiver = (ws as unknown as { _receiver?: Partial<FragmentInternals> })._receiver;
  if (typeof receiver?._maxFragments !== 'number') {
    throw new Error('unsupported ws version: ws._receiver._maxFragments not found (ws 8.21 or later is required)');
  }
  receiver._maxFragments = count;
}

/** The fragment limit `ws` currently enforces on `ws`. */
export function getMaxFragments(ws: WebSocket): number {
  return (ws as unknown as { _receiver: FragmentInternals })._receiver._maxFragments;
}
