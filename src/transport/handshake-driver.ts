/**
 * Runs the pure handshake state machine (handshake/handshake.ts) over one
 * WebSocket, with a timeout. Shared by client and server so both map failures
 * the same way: close with `err.closeCode` and the bare error code as the
 * reason (all the peer learns), and reject with the detailed McpE2eError for
 * the local side.
 *
 * Everything from receiving the last handshake message to raising the socket
 * limit runs synchronously inside one 'message' event: `ws` parses the next
 * frame header only after the handler returns, so the first session frame is
 * already checked against the session limit, and every earlier frame against
 * MAX_HANDSHAKE_MESSAGE_BYTES.
 */
import type { WebSocket } from 'ws';
import { McpE2eError } from '../errors.js';
import type { Handshake, HandshakeResult } from '../handshake/handshake.js';
import type { NodeIdentity, PeerIdentity } from '../identity/identity.js';
import { SUBPROTOCOL_ENCRYPTED } from '../protocol.js';
import { Session, type SessionOptions } from '../session/session.js';
import { asMcpE2eError, closeWithError, errorFromCloseBeforeSession, errorFromWsError } from './closing.js';
import type { Inbox } from './inbox.js';
import { MAX_FRAGMENTS_PER_MESSAGE } from './limits.js';
import { setMaxFragments, setMaxPayload } from './ws-internals.js';

export interface HandshakeDriverOptions {
  /** Our identity (signs our handshake message and, later, frames). */
  identity: NodeIdentity;
  /** Fail with `ERR_HANDSHAKE_TIMEOUT` (close 4008) after this many ms. */
  timeoutMs: number;
  /**
   * The trust decision, run on the authenticated peer before anything else
   * happens: the initiator runs it before sending step 3. Throw to refuse;
   * anything but an McpE2eError counts as `ERR_PEER_REJECTED`.
   */
  verifyPeer: (peer: PeerIdentity) => void;
  /** Options of the session created from the result. */
  sessionOptions: SessionOptions;
  /**
   * Responder: fail with `ERR_HANDSHAKE_TIMEOUT` when no message (step 1)
   * has arrived after this many ms. Default: only `timeoutMs`.
   */
  firstMessageTimeoutMs?: number;
  /** Abort the handshake: it fails with the signal's reason (an McpE2eError, e.g. an eviction). */
  signal?: AbortSignal;
}

const discard = (): void => {};

function wipe(result: HandshakeResult): void {
  result.sendKey.fill(0);
  result.recvKey.fill(0);
}

/**
 * Perform `handshake` over `ws` (which must be open and have `inbox` as its
 * only message consumer). Resolves with the session once the peer is
 * authenticated and accepted; the socket's message size limit is then the
 * session's `maxFrameBytes`, and frames after the handshake wait in `inbox`.
 *
 * @throws McpE2eError (as a rejection), after closing the socket:
 *   any `ERR_HANDSHAKE_*` from the state machine, `ERR_HANDSHAKE_TIMEOUT`,
 *   `ERR_PEER_REJECTED` / `ERR_PEER_KEY_CHANGED` (or another code, e.g. a
 *   responder's `ERR_LIMIT_REACHED`) from `verifyPeer`,
 *   `ERR_FRAME_TOO_LARGE` (a message above MAX_HANDSHAKE_MESSAGE_BYTES, closed
 *   1009 by ws), `ERR_LIMIT_REACHED` (initiator: the peer closed with 1013),
 *   else `ERR_CONNECTION_CLOSED` when the peer closes (its close frame's
 *   claim as `peerCode`).
 */
export function performHandshake(ws: WebSocket, inbox: Inbox, handshake: Handshake, options: HandshakeDriverOptions): Promise<Session> {
  return new Promise<Session>((resolve, reject) => {
    let settled = false;
    const finish = (err: McpE2eError | undefined, session?: Session): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(firstTimer);
      options.signal?.removeEventListener('abort', onAbort);
      ws.off('close', onClose);
      ws.off('error', onError);
      if (err) {
        // Keep reading and dropping what still comes: a paused socket would
        // never see the peer's answer to our close frame, and hold the
        // connection for the whole close grace period.
        inbox.setHandler(discard);
        closeWithError(ws, err);
        reject(err);
      } else {
        // Frames behind the last handshake message wait for the channel.
        inbox.setHandler(undefined);
        resolve(session!);
      }
    };
    /** A handshake message (or anything) has come from the peer. */
    let heard = false;
    const timer = setTimeout(
      () =>
        finish(
          new McpE2eError(
            'ERR_HANDSHAKE_TIMEOUT',
            // An initiator that heard nothing: the server accepted our subprotocol and then said nothing, which is
            // what a plain WebSocket server that selects any subprotocol offered (ws's default) does.
            handshake.role === 'initiator' && !heard
              ? `the server accepted the ${SUBPROTOCOL_ENCRYPTED} subprotocol but did not answer the handshake within ${options.timeoutMs} ms (a plain MCP WebSocket server that accepts any subprotocol, as supergateway does, stays silent so)`
              : `the handshake did not complete within ${options.timeoutMs} ms`,
          ),
        ),
      options.timeoutMs,
    );
    const firstTimer =
      options.firstMessageTimeoutMs === undefined
        ? undefined
        : setTimeout(
            () => finish(new McpE2eError('ERR_HANDSHAKE_TIMEOUT', `no handshake message within ${options.firstMessageTimeoutMs} ms of the upgrade`)),
            options.firstMessageTimeoutMs,
          );
    const onAbort = (): void => finish(asMcpE2eError(options.signal!.reason, 'ERR_CONNECTION_CLOSED'));
    if (options.signal?.aborted) queueMicrotask(onAbort);
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    const onClose = (code: number, reason: Buffer): void =>
      finish(errorFromCloseBeforeSession(handshake.role, code, reason) ?? new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed during the handshake'));
    // ws emits 'error' just before closing on protocol violations (e.g. 1009).
    const onError = (err: Error): void => finish(errorFromWsError(err));
    ws.on('close', onClose);
    ws.on('error', onError);

    const complete = (result: HandshakeResult): Session => {
      try {
        options.verifyPeer(result.peer);
      } catch (err) {
        const refusal = asMcpE2eError(err, 'ERR_PEER_REJECTED');
        if (result.role === 'responder') {
          // The initiator already holds the session keys: tell it, authenticated,
          // in the session's first and only record (PROTOCOL.md §4.4).
          const session = new Session(result, options.identity, options.sessionOptions);
          try {
            ws.send(session.sealClose(refusal.code));
          } finally {
            session.close();
          }
        } else {
          wipe(result);
        }
        throw refusal;
      }
      const session = new Session(result, options.identity, options.sessionOptions);
      // Raised only now, after authentication and the trust decision.
      setMaxPayload(ws, session.maxFrameBytes);
      setMaxFragments(ws, MAX_FRAGMENTS_PER_MESSAGE);
      return session;
    };

    inbox.setHandler((data, isBinary) => {
      if (settled) return;
      heard = true;
      clearTimeout(firstTimer);
      try {
        // Handshake messages are JSON text frames, always; a binary frame here is
        // a malformed handshake message (the state machine refuses non-strings).
        const step = handshake.receive(isBinary ? data : data.toString('utf8'));
        const session = step.result ? complete(step.result) : undefined;
        if (step.send) ws.send(step.send);
        if (session) finish(undefined, session);
      } catch (err) {
        finish(asMcpE2eError(err, 'ERR_HANDSHAKE_MALFORMED'));
      }
    });

    if (handshake.role === 'initiator') {
      try {
        ws.send(handshake.start());
      } catch (err) {
        finish(asMcpE2eError(err, 'ERR_HANDSHAKE_MALFORMED'));
      }
    }
  });
}
