/**
 * What client and server transports share once a connection is set up:
 * JSON-RPC messages sealed by the session into records of one or more
 * messages (encrypted mode, PROTOCOL.md §6) or sent as plain JSON text
 * frames, one message each (plaintext mode); the control channel; the sealed
 * CLOSE; backpressure; keepalive and idle timeouts; and the MCP `Transport`
 * callbacks with their guarantees (`onclose` exactly once, also after
 * `close()`; local detail to `onerror`, only the code to the peer).
 *
 * Decisions:
 * - A record that fails any check (decrypt, signature, counter, framing, a
 *   plaintext frame inside an encrypted session) ends the connection: the
 *   session cannot resynchronise after a lost or forged record.
 * - Every end of an encrypted session is sealed (PROTOCOL.md §6.8): `close()`
 *   and every local failure send a CLOSE record (empty, or the error code)
 *   before the WebSocket close frame. A session that ends without the
 *   peer's CLOSE is reported as `ERR_SESSION_TRUNCATED`: messages may have
 *   been cut off. A WebSocket close reason is never taken as the cause of
 *   anything (it is not authenticated): it is only kept as `peerCode`.
 * - An MCP payload that is not UTF-8, not JSON or not a JSON-RPC 2.0 message
 *   also ends the connection (`ERR_INVALID_MESSAGE`, close 4002), in both
 *   modes. In an encrypted session it was sent by the authenticated peer, so
 *   the peer is broken or hostile; the SDK's own transports skip such
 *   messages, which leaves the sender waiting forever for an answer.
 * - A malformed control message is reported to `onerror` and dropped; the
 *   connection stays up. The control channel carries hints (peer records,
 *   gossip), never anything the MCP layer depends on.
 */
import { once } from 'node:events';
import { WebSocket, type RawData } from 'ws';
import type { JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';
import type { NodeIdentity, PeerIdentity } from '../identity/identity.js';
import type { Handshake } from '../handshake/handshake.js';
import { closeReason, type Session } from '../session/session.js';
import { ContentType, MAX_RECORD_ENTRIES, RECORD_ENTRY_HEADER_BYTES, type Framing, type MessageContentType } from '../protocol.js';
import { asMcpE2eError, closeSocket, closeWithError, errorFromCloseBeforeSession, errorFromPeerClose, errorFromWsError, truncationError } from './closing.js';
import { performHandshake, type HandshakeDriverOptions } from './handshake-driver.js';
import { Inbox } from './inbox.js';
import { controlMessageProblem, decodeControlMessage, decodeJsonRpcMessage, encodeJsonText, type ControlMessage } from './json-rpc.js';
import { CLOSE_GRACE_MS, MAX_FRAGMENTS_PER_MESSAGE, MAX_QUEUED_INBOUND_FRAMES, type ResolvedConnectionLimits } from './limits.js';
import { RECORD_TARGET_BYTES, SendQueue, type OutgoingMessage } from './send-queue.js';
import { setMaxFragments, setMaxPayload } from './ws-internals.js';

type State = 'new' | 'connecting' | 'open' | 'closed';

/** The failure of sends after the socket closed, built only if a send is refused with it. */
const CONNECTION_CLOSED = (): McpE2eError => new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection is closed');

/** The inbox handler of a connection that is going away: frames are read and dropped. */
const discardFrame = (): void => {};

/**
 * The channel that adopted a socket, on the socket itself: its listeners are
 * shared functions that find their channel here, not closures made per
 * connection (four closures and their context are ~270 B of every idle one).
 */
const OWNER = Symbol('mcp-e2e channel');
type OwnedSocket = WebSocket & { [OWNER]?: WebSocketChannel };

/** Something that can fail: an Error for `onerror`. */
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Base of `EncryptedWebSocketClientTransport` and
 * `EncryptedWebSocketServerTransport`. Not used directly.
 */
export abstract class WebSocketChannel {
  /**
   * Keepalive: one unref'd interval timer per interval length, ticking every
   * open connection that uses it, instead of a timer per connection (a
   * Timeout, its closure and their context are ~230 B of every idle
   * connection). A connection's first ping comes at its group's next tick,
   * within one interval of opening; from then on, as before, a ping
   * unanswered by the next tick (one full interval later) drops the peer.
   */
  static readonly #keepalives = new Map<number, { channels: Set<WebSocketChannel>; timer: NodeJS.Timeout }>();

  /** A JSON-RPC message arrived (checked by the rules of PROTOCOL.md §6.7, as the MCP SDK would accept it). */
  onmessage?: (<T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void) | undefined;
  /** Something failed. Errors that end the connection are McpE2eErrors and are followed by `onclose`. */
  onerror?: ((error: Error) => void) | undefined;
  /** The connection is closed. Fires exactly once, for any reason, including `close()`. */
  onclose?: (() => void) | undefined;
  /**
   * A control message arrived (PROTOCOL.md §6.9): a JSON object with a
   * `type`, from the authenticated peer. The control channel carries
   * messages between mcp-e2e nodes (peer discovery, gossip) and never
   * reaches the MCP layer; a message of an unknown `type` is the
   * application's to ignore, one that is not a control message is reported
   * to `onerror` and dropped. Encrypted mode only.
   */
  oncontrol?: ((message: ControlMessage) => void) | undefined;

  /** MCP protocol version negotiated by the SDK (set through `setProtocolVersion`). */
  protocolVersion: string | undefined;

  protected readonly limits: ResolvedConnectionLimits;
  #state: State = 'new';
  #ws: WebSocket | undefined;
  #inbox: Inbox | undefined;
  #session: Session | undefined;
  /** Made by the first send (an idle connection has none: see `#sendQueue`). */
  #queue: SendQueue | undefined;
  /** We closed, or are closing, on purpose or after a local failure: the peer's echo is not news. */
  #closeRequested = false;
  /** The first socket error before the connection was set up (reported by whoever is connecting). */
  #earlyError: McpE2eError | undefined;
  /** Close code and reason the socket closed with. */
  #closeInfo: [number, Buffer | string] | undefined;
  #closeFired = false;
  #alive = true;
  /** `deliver()` has run: frames go to `#onFrame` unless receiving is paused. */
  #receiving = false;
  /** `pauseReceiving()` is in force. */
  #receivePaused = false;
  /** Decoded messages waiting for their turn (see `#deliverNext`). */
  #deliveries: JSONRPCMessage[] = [];
  #delivering = false;
  /** `#deliverNext` as a microtask, made by the first delivery (an idle connection has none). */
  #deliverNextTask: (() => void) | undefined;
  /** The socket closed while messages still waited for delivery: `onclose` follows the last one. */
  #closeAfterDeliveries = false;
  /** The most recent `send()`: the queue is FIFO, so once it settles every earlier frame has been handed to the socket. */
  #lastSend: Promise<void> | undefined;
  /** In the keepalive group of `limits.keepaliveIntervalMs` (see `#joinKeepalive`). */
  #inKeepalive = false;
  #idle: NodeJS.Timeout | undefined;
  /** What `whenClosed()` returns, made by its first call (a promise and its resolver are ~160 B an idle connection need not hold). */
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;

  protected constructor(limits: ResolvedConnectionLimits) {
    this.limits = limits;
  }

  /** The peer's verified identity (encrypted mode, after the handshake); undefined in plaintext mode. */
  get peer(): PeerIdentity | undefined {
    return this.#session?.peer;
  }

  /** True once an encrypted session is established. */
  get encrypted(): boolean {
    return this.#session !== undefined;
  }

  /** Framing and per-message signatures negotiated by the handshake (encrypted mode). */
  get negotiated(): { framing: Framing; signatures: boolean } | undefined {
    const s = this.#session;
    return s ? { framing: s.framing, signatures: s.signatures } : undefined;
  }

  /** The mcp-e2e session id (32 hex digits), unique per connection; undefined in plaintext mode. */
  get e2eSessionId(): string | undefined {
    return this.#session?.sessionId.toString('hex');
  }

  /** True once the connection is closed. */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** Called by the SDK with the negotiated MCP protocol version. */
  setProtocolVersion(version: string): void {
    this.protocolVersion = version;
  }

  /**
   * Send one JSON-RPC message as one frame. Unknown `options` (the SDK's
   * `relatedRequestId`, the v2 SDK's `requestSignal`, ...) are ignored: one
   * WebSocket carries everything in order.
   * @returns resolves when the frame is handed to the socket (after waiting
   *   for the socket to drain below the high-water mark).
   * @throws McpE2eError `ERR_CONNECTION_CLOSED` (not open), `ERR_FRAME_TOO_LARGE`
   *   (above `maxMessageBytes`; the connection stays open),
   *   `ERR_SEND_BUFFER_FULL` (too much already queued; the connection stays open).
   */
  send(message: JSONRPCMessage, _options?: unknown): Promise<void> {
    return this.#sendPayload(message, ContentType.MCP);
  }

  /**
   * Stop reading messages until `resumeReceiving()`, because the consumer is
   * behind. Frames are no longer opened or delivered: the next one waits in
   * the inbox, which then pauses the socket, and the peer's sends wait on TCP
   * flow control (its `send()` eventually waits for its socket to drain).
   * Messages already decoded (at most those of the last chunk read from the
   * socket) are still delivered to `onmessage`. Nothing is dropped. While
   * paused we cannot read the peer's pongs, so our own keepalive and idle
   * timeout do not count against the peer; but our pongs queue behind our
   * unread data too, so a consumer that stays behind for longer than two of
   * the peer's keepalive intervals can be dropped by the peer with
   * `ERR_IDLE_TIMEOUT`. Relays use this (src/cli/relay.ts): pause when the
   * output stream's `write()` returns false, resume on its `'drain'`.
   * Idempotent; works before the transport is started too.
   */
  pauseReceiving(): void {
    this.#receivePaused = true;
    this.#routeFrames();
  }

  /** Undo `pauseReceiving()`: waiting frames are delivered first, in order, then the socket reads again. Idempotent. */
  resumeReceiving(): void {
    if (this.#receivePaused) {
      // Pongs could not be read while paused: give the peer a fresh interval.
      this.#alive = true;
    }
    this.#receivePaused = false;
    this.#routeFrames();
  }

  /** True while `pauseReceiving()` is in force. */
  get receivingPaused(): boolean {
    return this.#receivePaused;
  }

  /**
   * True while frames wait behind the send high-water mark: the latest
   * `send()` resolves only once the socket has drained. A relay stops
   * reading its source while this is true (see src/cli/relay.ts).
   */
  get sendBlocked(): boolean {
    return (this.#queue?.queuedBytes ?? 0) > 0;
  }

  /**
   * Send one control message (PROTOCOL.md §6.9): a JSON object whose `type`
   * names it, at most MAX_CONTROL_MESSAGE_BYTES of JSON. Encrypted mode only.
   * @throws TypeError (synchronously) for a value that is not a control message.
   * @throws McpE2eError `ERR_PLAINTEXT_REFUSED` on a plaintext connection,
   *   else as `send()`.
   */
  sendControl(message: ControlMessage): Promise<void> {
    const problem = controlMessageProblem(message);
    if (problem !== undefined) throw new TypeError(`"message" expected a control message: ${problem}`);
    return this.#sendPayload(message, ContentType.CONTROL);
  }

  /**
   * Close the connection (close code 1000). Everything `send()` accepted
   * goes out first, then the close frame: the peer receives it all, in
   * order, before its `onclose` (a peer that stops reading is dropped after
   * CLOSE_GRACE_MS without progress, and the loss is reported to `onerror`).
   * Later `send()`s fail with `ERR_CONNECTION_CLOSED`. Resolves after
   * `onclose` has fired. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') {
      this.#fireClose();
      return;
    }
    const first = !this.#closeRequested;
    this.#closeRequested = true;
    const ws = this.#ws;
    if (!ws) {
      this.#onSocketClosed();
      return;
    }
    if (first) {
      if (this.#state === 'open') {
        // Incoming records are dropped from now on; keep reading so the peer's close frame is seen.
        this.#inbox?.setHandler(discardFrame);
        this.#queue?.packNow();
        await this.#flush(ws);
        // The sealed end of our stream, behind everything we sent.
        this.#sendClose(ws, undefined);
      }
      closeSocket(ws, 1000, '', CLOSE_GRACE_MS, (bytes) =>
        this.report(new McpE2eError('ERR_CONNECTION_CLOSED', `the peer stopped reading during close: ${bytes} bytes already sent by send() were not delivered`)),
      );
    }
    await this.whenClosed();
  }

  /**
   * Wait until every accepted frame is handed to `ws`, as long as the socket
   * makes progress (its buffer drains at least once per CLOSE_GRACE_MS).
   * Frames still queued after that fail with ERR_CONNECTION_CLOSED (their
   * `send()` rejects): lost, but not silently.
   */
  async #flush(ws: WebSocket): Promise<void> {
    const last = this.#lastSend;
    if (!last) return;
    let settled = false;
    const done = last.then(
      () => (settled = true),
      () => (settled = true),
    );
    let buffered = Number.POSITIVE_INFINITY;
    let queued = Number.POSITIVE_INFINITY;
    while (!settled && ws.readyState === WebSocket.OPEN) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)))]);
      clearTimeout(timer);
      if (settled) return;
      const nowBuffered = ws.bufferedAmount;
      const nowQueued = this.#queue?.queuedBytes ?? 0;
      if (nowBuffered >= buffered && nowQueued >= queued) {
        this.#queue?.fail(new McpE2eError('ERR_CONNECTION_CLOSED', 'closed before the message could be sent: the peer stopped reading'));
        return;
      }
      buffered = nowBuffered;
      queued = nowQueued;
    }
  }

  /** Extra information handed to `onmessage` with each message. */
  protected messageExtra(): MessageExtraInfo | undefined {
    return undefined;
  }

  /**
   * Resolves once the socket is closed and `onclose` has fired, whoever set
   * `onclose` (the MCP SDK replaces it): how a mesh node follows a session.
   */
  whenClosed(): Promise<void> {
    this.#closed ??= this.#closeFired ? Promise.resolve() : new Promise((resolve) => (this.#resolveClosed = resolve));
    return this.#closed;
  }

  /** True when `close()` ran before the connection was set up. */
  protected get closeRequested(): boolean {
    return this.#closeRequested;
  }

  /** @internal Take ownership of a freshly created socket: from here on, its events are ours. */
  protected adoptSocket(ws: WebSocket): void {
    this.#ws = ws;
    this.#state = 'connecting';
    this.#inbox = new Inbox(ws, MAX_QUEUED_INBOUND_FRAMES);
    (ws as OwnedSocket)[OWNER] = this;
    ws.on('message', WebSocketChannel.#onSocketMessage);
    // Before the connection is set up the connecting code reports errors; a
    // listener must exist anyway, or ws would throw an unhandled 'error'.
    ws.on('error', WebSocketChannel.#onSocketError);
    ws.on('close', WebSocketChannel.#onSocketClose);
    if (this.limits.keepaliveIntervalMs > 0) ws.on('pong', WebSocketChannel.#onSocketPong);
    if (ws.readyState === WebSocket.CLOSED) this.#onSocketClosed();
  }

  // The socket listeners, shared by every connection (`this` is the socket; see OWNER).
  static #onSocketMessage(this: OwnedSocket, data: RawData, isBinary: boolean): void {
    this[OWNER]!.#inbox!.receive(data, isBinary);
  }

  static #onSocketError(this: OwnedSocket, err: Error): void {
    const channel = this[OWNER]!;
    if (channel.#state === 'open') channel.fail(errorFromWsError(err));
    else channel.#earlyError ??= errorFromWsError(err);
  }

  static #onSocketClose(this: OwnedSocket, code: number, reason: Buffer): void {
    this[OWNER]!.#onSocketClosed(code, reason);
  }

  static #onSocketPong(this: OwnedSocket): void {
    this[OWNER]!.#alive = true;
  }

  /** @internal Run the handshake over the adopted, open socket and switch to the session. */
  protected async secure(
    handshake: Handshake,
    identity: NodeIdentity,
    verifyPeer: (peer: PeerIdentity) => void,
    timeoutMs: number,
    extra: Pick<HandshakeDriverOptions, 'firstMessageTimeoutMs' | 'signal'> = {},
  ): Promise<void> {
    // ws may have failed the socket between 'open' and now (e.g. an oversized
    // first frame right behind the upgrade response): report that, not a
    // generic closure.
    const ws = this.#ws!;
    if (ws.readyState !== WebSocket.OPEN) {
      if (this.#earlyError) throw this.#earlyError;
      // The peer is closing (e.g. a server at its connection limit): wait for its code and reason.
      const [code, reason] = ws.readyState === WebSocket.CLOSED ? (this.#closeInfo ?? [1006, '']) : ((await once(ws, 'close').catch((err: Error) => {
            throw errorFromWsError(err);
          })) as [number, Buffer]);
      const closed = new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed before the handshake');
      throw this.#closeRequested ? closed : (errorFromCloseBeforeSession(handshake.role, code, reason) ?? closed);
    }
    const session = await performHandshake(this.#ws!, this.#inbox!, handshake, {
      identity,
      timeoutMs,
      verifyPeer,
      sessionOptions: this.limits.session,
      ...extra,
    });
    // ws may have failed the socket right behind the last handshake message
    // (e.g. an oversized frame in the same TCP chunk), before anyone listens
    // to this transport: that failure is the outcome of setting it up.
    if (this.#earlyError) {
      session.close();
      throw this.#earlyError;
    }
    if (this.#state !== 'connecting') {
      session.close();
      throw new McpE2eError('ERR_CONNECTION_CLOSED', 'the connection closed during the handshake');
    }
    this.#session = session;
    this.#open();
  }

  /** Switch the adopted, open socket to plain MCP. */
  protected openPlaintext(): void {
    setMaxPayload(this.#ws!, this.limits.maxMessageBytes);
    setMaxFragments(this.#ws!, MAX_FRAGMENTS_PER_MESSAGE);
    this.#open();
  }

  /** Start handing messages to `onmessage` (frames received so far come first), unless receiving is paused. */
  protected deliver(): void {
    if (this.#state !== 'open') return;
    this.#receiving = true;
    this.#routeFrames();
  }

  /** Point the inbox at `#onFrame`, or at nobody while paused; a closing connection keeps its discarding handler. */
  #routeFrames(): void {
    if (this.#state !== 'open' || this.#closeRequested || !this.#receiving) return;
    this.#inbox!.setHandler(this.#receivePaused ? undefined : this.#onFrame);
  }

  /**
   * End the connection because of `err`: report it locally, close with
   * `err.closeCode` and the bare code as reason. Only the first failure counts.
   */
  protected fail(err: McpE2eError): void {
    if (this.#closeRequested || this.#state === 'closed') return;
    this.#closeRequested = true;
    this.report(err);
    this.#queue?.fail(err);
    this.#inbox?.clear();
    // Keep reading (and dropping) so the peer's answer to our close frame is seen.
    if (this.#state === 'open') this.#inbox?.setHandler(discardFrame);
    if (this.#ws) {
      // The peer learns why, authenticated: our sending side is intact whatever broke.
      if (this.#state === 'open') this.#sendClose(this.#ws, err);
      closeWithError(this.#ws, err);
    } else this.#onSocketClosed();
  }

  /**
   * @internal End this connection with `err`: its code goes in our sealed
   * CLOSE and as the close reason (e.g. the peer left the allowlist, or was
   * cut off for misbehaving). Idempotent; only the first failure counts.
   */
  terminate(err: McpE2eError): void {
    this.fail(err);
  }

  /** Seal and send our CLOSE (encrypted sessions; at most once; never when the session cannot seal any more). */
  #sendClose(ws: WebSocket, err: McpE2eError | undefined): void {
    const session = this.#session;
    if (!session || session.closed || session.sendClosed || ws.readyState !== WebSocket.OPEN) return;
    if (err?.code === 'ERR_SESSION_EXHAUSTED') return;
    try {
      ws.send(session.sealClose(err?.code));
    } catch {
      // Counter space used up: the close frame alone ends the connection.
    }
  }

  /** Hand `err` to `onerror` without letting a throwing handler break us. */
  protected report(err: Error): void {
    try {
      this.onerror?.(err);
    } catch {
      // The application's error handler failed; nothing sensible is left to tell.
    }
  }

  #open(): void {
    this.#state = 'open';
    // From here, not from start(): a connection whose application never
    // starts it must still be dropped when the peer dies or idles.
    this.#startTimers();
  }

  /**
   * The send queue, made by the first send of an open connection: with its
   * options, batches and callbacks it is ~0.5 KiB that an idle connection
   * (most of a server's) never uses. Every path that ends the connection
   * fails the queue if there is one, and refuses sends before they get here.
   */
  #sendQueue(): SendQueue {
    if (this.#queue) return this.#queue;
    const session = this.#session;
    this.#queue = new SendQueue(
      this.#ws!,
      {
        highWaterMarkBytes: this.limits.sendHighWaterMarkBytes,
        maxBufferBytes: this.limits.maxSendBufferBytes,
        maxMessagesPerFrame: session ? MAX_RECORD_ENTRIES : 1,
        frameTargetBytes: session ? RECORD_TARGET_BYTES : 1,
        perMessageOverheadBytes: session ? RECORD_ENTRY_HEADER_BYTES : 0,
      },
      session ? (messages) => this.#sealRecord(session, messages) : (messages) => messages[0]!.text,
    );
    return this.#queue;
  }

  /** Pack a batch into one record. A failure here (counter space used up) ends the session. */
  #sealRecord(session: Session, messages: readonly OutgoingMessage[]): string | Buffer {
    try {
      return session.sealRecord(messages.map((m) => ({ contentType: m.contentType, payload: m.text })));
    } catch (err) {
      const e = asMcpE2eError(err, 'ERR_SESSION_EXHAUSTED');
      this.fail(e);
      throw e;
    }
  }

  #sendPayload(message: unknown, contentType: MessageContentType): Promise<void> {
    if (this.#state !== 'open' || this.#closeRequested) {
      return Promise.reject(new McpE2eError('ERR_CONNECTION_CLOSED', 'the transport is not connected'));
    }
    const session = this.#session;
    if (!session && contentType === ContentType.CONTROL) {
      return Promise.reject(new McpE2eError('ERR_PLAINTEXT_REFUSED', 'the control channel exists only on encrypted connections'));
    }
    // The JSON text goes to the session as a string: it is UTF-8-encoded
    // once, straight into the buffer that is encrypted.
    let text: string;
    try {
      text = encodeJsonText(message);
    } catch (err) {
      return Promise.reject(err);
    }
    const max = session ? session.maxPayloadBytes(contentType) : this.limits.maxMessageBytes;
    // Exact where it matters (the record cap, the limit); a long string is
    // measured only when its UTF-8 form could go either way.
    const bytes = text.length <= RECORD_TARGET_BYTES || (text.length <= max && text.length * 3 > max) ? Buffer.byteLength(text, 'utf8') : text.length;
    if (bytes > max) {
      return Promise.reject(new McpE2eError('ERR_FRAME_TOO_LARGE', `message of ${bytes} bytes exceeds the limit of ${max} bytes`));
    }
    if (contentType === ContentType.MCP) this.#idle?.refresh();
    return (this.#lastSend = this.#sendQueue().push({ text, contentType, bytes }));
  }

  #onFrame = (data: Buffer, isBinary: boolean): void => {
    if (this.#closeRequested) return;
    this.#alive = true;
    const session = this.#session;
    if (!session) {
      try {
        if (isBinary) throw new McpE2eError('ERR_INVALID_MESSAGE', 'binary frame on a plaintext MCP connection (MCP messages are JSON text frames)');
        this.#queueDelivery(decodeJsonRpcMessage(data));
      } catch (err) {
        this.fail(asMcpE2eError(err, 'ERR_INVALID_MESSAGE'));
      }
      return;
    }
    let entries;
    try {
      // Records are binary or JSON text depending on the framing; the
      // session refuses the other kind, which catches injected plaintext.
      entries = session.open(isBinary ? data : data.toString('utf8'));
    } catch (err) {
      this.fail(asMcpE2eError(err, 'ERR_FRAME_MALFORMED'));
      return;
    }
    // In order: a bad message ends the connection, and nothing behind it is delivered.
    for (const entry of entries) {
      if (entry.contentType === ContentType.CONTROL) this.#onControl(entry.payload);
      else if (entry.contentType === ContentType.CLOSE) this.#onPeerClose(entry.payload);
      else {
        try {
          this.#queueDelivery(decodeJsonRpcMessage(entry.payload));
        } catch (err) {
          this.fail(asMcpE2eError(err, 'ERR_INVALID_MESSAGE'));
          return;
        }
      }
      if (this.#closeRequested) return;
    }
  };

  #queueDelivery(message: JSONRPCMessage): void {
    this.#idle?.refresh();
    this.#deliveries.push(message);
    if (!this.#delivering) {
      this.#delivering = true;
      queueMicrotask((this.#deliverNextTask ??= () => this.#deliverNext()));
    }
  }

  /**
   * The peer's sealed CLOSE: its stream ended here, for the reason given
   * (authenticated). Everything before it is delivered; we stop sending
   * (what is queued is lost, and `send()`s waiting for room reject) and close.
   */
  #onPeerClose(payload: Buffer): void {
    this.#closeRequested = true;
    const { code, text } = closeReason(payload);
    const err = text === ''
      ? undefined
      : code
        ? new McpE2eError(code, `the peer closed the session: ${code}`, { fromPeer: true })
        : new McpE2eError('ERR_CONNECTION_CLOSED', `the peer closed the session with reason ${JSON.stringify(text)} (not one of our codes)`, { fromPeer: true });
    if (err) this.report(err);
    this.#queue?.fail(err ?? (() => new McpE2eError('ERR_CONNECTION_CLOSED', 'the peer closed the session')));
    this.#inbox?.setHandler(discardFrame);
    if (this.#ws) closeSocket(this.#ws, 1000, '');
  }

  /**
   * Hand one message to `onmessage` per microtask, never several in one
   * synchronous run. The SDK (1.x `Protocol`) dispatches notifications one
   * microtask later but responses at once, so a progress notification and the
   * response right behind it in the same TCP chunk would be handled in the
   * wrong order, and the progress dropped as "unknown token"
   * (modelcontextprotocol/typescript-sdk#2580). Queuing the next delivery
   * after the SDK's own microtask restores arrival order.
   */
  #deliverNext(): void {
    const message = this.#deliveries.shift();
    if (message !== undefined) {
      try {
        this.onmessage?.(message, this.messageExtra());
      } catch (err) {
        this.report(asError(err));
      }
    }
    // Queued only now, behind whatever microtask the SDK queued for this message.
    if (this.#deliveries.length > 0) queueMicrotask(this.#deliverNextTask!);
    else {
      this.#delivering = false;
      if (this.#closeAfterDeliveries) this.#fireClose();
    }
  }

  #onControl(payload: Buffer): void {
    let value: ControlMessage;
    try {
      value = decodeControlMessage(payload);
    } catch (err) {
      this.report(asMcpE2eError(err, 'ERR_INVALID_MESSAGE'));
      return;
    }
    try {
      this.oncontrol?.(value);
    } catch (err) {
      this.report(asError(err));
    }
  }

  static #joinKeepalive(channel: WebSocketChannel, intervalMs: number): void {
    let group = WebSocketChannel.#keepalives.get(intervalMs);
    if (!group) {
      const channels = new Set<WebSocketChannel>();
      const timer = setInterval(() => {
        // A channel that fails here leaves the set when its socket closes; the others are still ticked.
        for (const c of channels) c.#keepaliveTick();
      }, intervalMs);
      timer.unref();
      group = { channels, timer };
      WebSocketChannel.#keepalives.set(intervalMs, group);
    }
    group.channels.add(channel);
    channel.#inKeepalive = true;
  }

  static #leaveKeepalive(channel: WebSocketChannel): void {
    if (!channel.#inKeepalive) return;
    channel.#inKeepalive = false;
    const intervalMs = channel.limits.keepaliveIntervalMs;
    const group = WebSocketChannel.#keepalives.get(intervalMs);
    if (!group) return;
    group.channels.delete(channel);
    if (group.channels.size === 0) {
      clearInterval(group.timer);
      WebSocketChannel.#keepalives.delete(intervalMs);
    }
  }

  #keepaliveTick(): void {
    // While we do not read the socket (pauseReceiving), a missing pong says nothing about the peer.
    if (!this.#alive && !this.#receivePaused) {
      this.fail(new McpE2eError('ERR_IDLE_TIMEOUT', `the peer did not answer a keepalive ping within ${this.limits.keepaliveIntervalMs} ms`));
      return;
    }
    this.#alive = false;
    const ws = this.#ws!;
    if (ws.readyState === WebSocket.OPEN) {
      try {
        ws.ping();
      } catch {
        // The socket is going away; its close ends this connection.
      }
    }
  }

  #startTimers(): void {
    const { keepaliveIntervalMs, idleTimeoutMs } = this.limits;
    if (keepaliveIntervalMs > 0) WebSocketChannel.#joinKeepalive(this, keepaliveIntervalMs);
    if (idleTimeoutMs > 0) {
      this.#idle = setTimeout(() => {
        // A consumer that paused receiving is busy, not idle.
        if (this.#receivePaused) this.#idle?.refresh();
        else this.fail(new McpE2eError('ERR_IDLE_TIMEOUT', `no MCP message in either direction for ${idleTimeoutMs} ms`));
      }, idleTimeoutMs);
      this.#idle.unref();
    }
  }

  #onSocketClosed(code?: number, reason?: Buffer): void {
    if (this.#state === 'closed') return;
    if (code !== undefined) this.#closeInfo = [code, reason ?? ''];
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    WebSocketChannel.#leaveKeepalive(this);
    clearTimeout(this.#idle);
    this.#inbox?.clear();
    this.#queue?.fail(CONNECTION_CLOSED);
    this.#session?.close();
    if (wasOpen && !this.#closeRequested && code !== undefined) {
      // An encrypted session without the peer's CLOSE was cut short, whatever the close frame says.
      const err = this.#session ? truncationError(code, reason ?? '') : errorFromPeerClose(code, reason ?? '');
      if (err) this.report(err);
    }
    // Messages that arrived before the close are delivered before `onclose`.
    if (this.#delivering) this.#closeAfterDeliveries = true;
    else this.#fireClose();
  }

  #fireClose(): void {
    if (this.#closeFired) return;
    this.#closeFired = true;
    this.#resolveClosed?.();
    try {
      this.onclose?.();
    } catch (err) {
      this.report(asError(err));
    }
  }
}
