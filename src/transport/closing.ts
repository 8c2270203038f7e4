/**
 * How connections end. On a local failure the peer learns only the close code
 * and the opaque reason (the error code, e.g. `ERR_FRAME_DECRYPT`); the detail
 * stays in the local error. An encrypted session also sends the code in its
 * sealed CLOSE (channel.ts), the only reason a receiver believes; what a
 * WebSocket close frame says is kept as `peerCode`, a claim (PROTOCOL.md
 * §9.1). Nothing here ever puts key material or plaintext in a reason or
 * message.
 */
import { WebSocket } from 'ws';
import { CloseCode, ERROR_CODES, McpE2eError, type ErrorCode } from '../errors.js';
import { CLOSE_GRACE_MS } from './limits.js';

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);
/** Reasons that mean "closed on purpose", not a failure worth reporting. */
const ORDERLY: ReadonlySet<string> = new Set<ErrorCode>(['ERR_CONNECTION_CLOSED', 'ERR_SESSION_CLOSED']);

/**
 * Send a close frame with `code` and `reason`, then drop the TCP connection
 * if the peer has not completed the closing handshake after `graceMs`: a
 * hostile peer must not keep a half-closed socket alive. Safe in any state.
 *
 * The close frame goes out behind every frame already handed to `ws`. While
 * those bytes still drain (the socket's buffer shrinks from one check to the
 * next), the grace is renewed, so a slow but reading peer still gets
 * everything; a peer that stops reading is dropped after `graceMs` without
 * progress. `onUndelivered` is told how many bytes were still unsent when
 * the socket had to be dropped.
 */
export function closeSocket(ws: WebSocket, code: number, reason: string, graceMs = CLOSE_GRACE_MS, onUndelivered?: (bytes: number) => void): void {
  if (ws.readyState === WebSocket.CLOSED) return;
  if (ws.readyState === WebSocket.CONNECTING) {
    ws.terminate();
    return;
  }
  if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
  let buffered = ws.bufferedAmount;
  const expire = (): void => {
    const now = ws.bufferedAmount;
    if (now > 0 && now < buffered) {
      buffered = now;
      timer = setTimeout(expire, graceMs);
      timer.unref();
      return;
    }
    if (now > 0) onUndelivered?.(now);
    ws.terminate();
  };
  let timer = setTimeout(expire, graceMs);
  timer.unref();
  ws.once('close', () => clearTimeout(timer));
}

/** Close with the error's close code and its code as the only reason. */
export function closeWithError(ws: WebSocket, err: McpE2eError): void {
  closeSocket(ws, err.closeCode, err.code);
}

/** RFC 6455 close codes with a meaning of their own, when the reason is not one of our codes. */
const RFC6455_CODES: Readonly<Record<number, ErrorCode>> = Object.freeze({
  1002: 'ERR_FRAME_MALFORMED',
  1007: 'ERR_INVALID_MESSAGE',
  1009: 'ERR_FRAME_TOO_LARGE',
  1013: 'ERR_LIMIT_REACHED',
});

/**
 * The error code a close frame names: its reason when that is one of our
 * codes, else the meaning of an RFC 6455 code a WebSocket library uses for
 * its own closes (1002, 1007, 1009, 1013); undefined otherwise. Never the
 * peer's text itself.
 */
export function peerCodeOf(code: number, reason: Buffer | string): ErrorCode | undefined {
  const text = typeof reason === 'string' ? reason : reason.toString('utf8');
  if (KNOWN_CODES.has(text)) return text as ErrorCode;
  return RFC6455_CODES[code];
}

const isOrderly = (code: number, claimed: ErrorCode | undefined) =>
  claimed === undefined ? code === 1000 || code === 1001 || code === 1005 : ORDERLY.has(claimed);

/**
 * The peer closed a connection that has no session (the handshake, or
 * plaintext MCP): undefined for an orderly close, else `ERR_CONNECTION_CLOSED`
 * with the code the close frame names as `peerCode`. A close frame is not
 * authenticated (PROTOCOL.md §9.1), so what it claims is reported, never
 * acted on: it cannot make a client give up, or tell a person something
 * false as a fact.
 */
export function errorFromPeerClose(code: number, reason: Buffer | string): McpE2eError | undefined {
  const claimed = peerCodeOf(code, reason);
  if (isOrderly(code, claimed)) return undefined;
  const said = claimed ? `; its close frame says ${claimed}, which is not authenticated` : '';
  return new McpE2eError('ERR_CONNECTION_CLOSED', `the peer closed the connection (close code ${code}${said})`, { peerCode: claimed });
}

/**
 * The peer closed before our session started (the handshake, or before it).
 * For the initiator, a close with 1013 (RFC 6455 "try again later") is
 * `ERR_LIMIT_REACHED`; everything else is as `errorFromPeerClose`. Before the
 * handshake nothing can be authenticated, so this reports what happened to
 * our own attempt (as an HTTP 429 to the upgrade does), not the peer's word;
 * and it only ever leads to another attempt later (`ERR_LIMIT_REACHED` is
 * retryable), which any failed attempt leads to: a forged 1013 gains an
 * attacker nothing that dropping the connection would not (PROTOCOL.md
 * §9.1). A responder does not take a client's 1013 as a limit of its own.
 */
export function errorFromCloseBeforeSession(role: 'initiator' | 'responder', code: number, reason: Buffer | string): McpE2eError | undefined {
  if (role === 'responder' || code !== CloseCode.TRY_AGAIN_LATER) return errorFromPeerClose(code, reason);
  return new McpE2eError('ERR_LIMIT_REACHED', 'the server closed the connection before the handshake with close code 1013 (try again later: it is at a limit; not authenticated)', {
    peerCode: peerCodeOf(code, reason),
  });
}

/**
 * An encrypted session ended without the peer's sealed CLOSE (PROTOCOL.md
 * §6.8): the stream may have been cut short by anyone on the path, whatever
 * the close frame says (kept as `peerCode` when it names one of our codes).
 */
export function truncationError(code: number, reason: Buffer | string): McpE2eError {
  const claimed = peerCodeOf(code, reason);
  const said = claimed ? `; its close frame says ${claimed}, which is not authenticated` : '';
  return new McpE2eError('ERR_SESSION_TRUNCATED', `the connection ended without the peer's sealed close (close code ${code}${said}): messages may have been cut off`, {
    peerCode: isOrderly(code, claimed) ? undefined : claimed,
  });
}

/** Map an 'error' event of `ws` (protocol violation, size limit, socket error) to our codes. */
export function errorFromWsError(err: Error): McpE2eError {
  const code = (err as { code?: unknown }).code;
  if (err instanceof McpE2eError) return err;
  // ws closes these itself, with 1009 (sizes) or 1008 (too many fragments or buffered chunks).
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH') {
    return new McpE2eError('ERR_FRAME_TOO_LARGE', 'the peer sent a WebSocket message above the current size limit', { cause: err });
  }
  if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') {
    return new McpE2eError('ERR_FRAME_TOO_LARGE', 'the peer split a WebSocket message into too many fragments', { cause: err });
  }
  if (code === 'WS_ERR_INVALID_UTF8') return new McpE2eError('ERR_INVALID_MESSAGE', 'the peer sent a text frame that is not UTF-8', { cause: err });
  if (typeof code === 'string' && code.startsWith('WS_ERR_')) {
    return new McpE2eError('ERR_FRAME_MALFORMED', `WebSocket protocol violation by the peer (${code})`, { cause: err });
  }
  if (/subprotocol/i.test(err.message)) {
    return new McpE2eError('ERR_SUBPROTOCOL', `subprotocol negotiation failed: ${err.message}`, { cause: err });
  }
  return new McpE2eError('ERR_CONNECTION_CLOSED', `socket error: ${err.message}`, { cause: err });
}

/** `err` as an McpE2eError, wrapping anything else under `fallback`. */
export function asMcpE2eError(err: unknown, fallback: ErrorCode): McpE2eError {
  if (err instanceof McpE2eError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new McpE2eError(fallback, message, { cause: err });
}
