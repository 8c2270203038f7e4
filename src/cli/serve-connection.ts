/**
 * One connection of `serve`: a server process of its own, relayed both ways
 * with backpressure (relay.ts), stopped when the connection closes, and the
 * connection closed when it exits. With `lazy`, the process starts with the
 * first MCP message (a mesh session that only gossips costs no process),
 * and `refuse` is asked at every message whether MCP is still allowed.
 *
 * A process that exits before answering is not a bare close for the peer:
 * each request it left unanswered gets a JSON-RPC error response that says
 * how it ended (exit code or signal, and with `shareStderr` the last line it
 * wrote to stderr), sent inside the session like every message, so the
 * client knows it comes from this server. A process that dies before the
 * peer sent anything (a crash at start) waits up to EXIT_REPORT_GRACE_MS for
 * the first request (the client's `initialize`) to answer it the same way.
 */
import { McpE2eError } from '../errors.js';
import type { PeerIdentity } from '../identity/identity.js';
import type { EncryptedWebSocketServerTransport } from '../transport/server-transport.js';
import { spawnChild, type ChildServer } from './child.js';
import type { Logger } from './log.js';
import { isRequest, PacedSender, PendingRequests, relayError, writeLine, type Message } from './relay.js';

/** After its process died, how long a connection that has received nothing waits for a request to answer with the reason (ms). */
export const EXIT_REPORT_GRACE_MS = 2000;
/** How long to wait for a dead process's stdout to end, so that answers it did write go first (ms). */
const OUTPUT_END_WAIT_MS = 1000;

export interface ServeConnectionOptions {
  /** The server's command line and environment, asked when its process starts (with `lazy`, the allowlist may have changed since the connection was made). */
  launch: () => { command: readonly string[]; env: NodeJS.ProcessEnv };
  /** Longest line accepted from its stdout (bytes). */
  maxLineBytes: number;
  /** Tell the peer the last line the process wrote to stderr when it exits without answering. */
  shareStderr: boolean;
  /** This connection's log. */
  log: Logger;
  /** Called with the child once it is started, and again (`gone`) once its whole process group is gone. */
  track: (child: ChildServer, gone: boolean) => void;
  /** Start the process with the first message from the peer, not at once. */
  lazy?: boolean;
  /** Asked at every message: a reason to refuse MCP to this peer (the connection is then closed), or undefined. */
  refuse?: () => string | undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Relay `transport` to a new server process until either ends. Resolves once the transport is started. */
export async function serveConnection(transport: EncryptedWebSocketServerTransport, _peer: PeerIdentity | undefined, options: ServeConnectionOptions): Promise<void> {
  const { log } = options;
  /** Requests of the peer the process has not answered. */
  const pending = new PendingRequests();
  let received = 0;
  /** Set once the process is gone: answers what still comes. */
  let afterExit: ((msg: Message) => void) | undefined;
  let child: ChildServer | undefined;
  // Child → peer: the child's stdout is paused while sends wait; a send that fails all the same ends the connection.
  const toPeer = new PacedSender({ pause: () => void child?.stdout.pause(), resume: () => void child?.stdout.resume() }, (err) => {
    if (transport.closed) return log.debug('message to the peer not sent: the connection is closed', { error: err.message });
    log.error(`a message from the server process could not be sent, closing the connection: ${err.message}`, err instanceof McpE2eError ? { code: err.code } : {});
    void transport.close();
  });
  const start = (): ChildServer => {
    const { command, env } = options.launch();
    const c = spawnChild(
      command,
      log,
      (msg) => {
        pending.answered(msg);
        toPeer.send(transport, msg);
      },
      { maxLineBytes: options.maxLineBytes, env },
    );
    options.track(c, false);
    void c.exited.then((how) => reportExit(c, how));
    return c;
  };
  // Peer → child: while the child's stdin is full, the connection is not read.
  transport.onmessage = (msg) => {
    const m = msg as unknown as Message;
    received++;
    if (afterExit) return afterExit(m);
    const refusal = options.refuse?.();
    if (refusal) {
      log.warn(refusal, { code: 'ERR_PEER_REJECTED' });
      void transport.close();
      return;
    }
    child ??= start();
    pending.sent(m);
    if (child.stdin.writable) writeLine(child.stdin, m, transport);
  };
  transport.onerror = (err) => log.warn(err.message, err instanceof McpE2eError ? { code: err.code } : {});
  transport.onclose = () => {
    log.info(child ? 'connection closed; stopping its server process' : 'connection closed');
    void child?.terminate();
  };
  const reportExit = async (c: ChildServer, how: string) => {
    log.info(`server process ${how}`);
    if (!transport.closed) {
      await Promise.race([c.outputEnded, sleep(OUTPUT_END_WAIT_MS)]);
      const words = options.shareStderr && c.lastStderrLine ? `; its last line on stderr: ${c.lastStderrLine}` : '; the server\'s log says why';
      const why = `mcp-e2e serve: the MCP server process ${how} before answering${words}`;
      const answer = (id: unknown) => toPeer.send(transport, relayError(id, why));
      for (const id of pending.take()) answer(id);
      if (received === 0) {
        // It died before the client asked anything: answer the first request (initialize) rather than just close.
        await new Promise<void>((done) => {
          afterExit = (m) => {
            if (!isRequest(m)) return;
            answer(m.id);
            done();
          };
          void sleep(EXIT_REPORT_GRACE_MS).then(done);
          void transport.whenClosed().then(done);
        });
      }
      afterExit ??= (m) => isRequest(m) && answer(m.id);
    }
    void transport.close();
    // Counted until its whole process group is gone, so that shutdown waits for grandchildren too.
    await c.terminate();
    options.track(c, true);
  };
  if (!options.lazy) child = start();
  // Messages flow to onmessage only once started (as McpServer.connect would do).
  await transport.start();
}
