/**
 * WebSocket subprotocol negotiation (RFC 6455 §1.9). The mode of a
 * connection — encrypted `mcp-e2e.v1` or plain MCP `mcp` — is decided here,
 * from local configuration and the offered list only, before any message is
 * read. There is no fallback: a client offers exactly one subprotocol and
 * refuses any other answer; a server never silently serves plaintext.
 */
import { SUBPROTOCOL_ENCRYPTED, SUBPROTOCOL_PLAINTEXT } from '../protocol.js';
import { McpE2eError } from '../errors.js';

export type ConnectionMode = 'encrypted' | 'plaintext';

/** The one subprotocol a client offers in `mode`. */
export function subprotocolFor(mode: ConnectionMode): string {
  return mode === 'encrypted' ? SUBPROTOCOL_ENCRYPTED : SUBPROTOCOL_PLAINTEXT;
}

/**
 * Server side: which offered subprotocol to answer with. Encryption wins
 * whenever it is offered. `mcp` is selected even when plaintext is not
 * allowed, so that the server can then close with a clear
 * `ERR_PLAINTEXT_REFUSED` rather than fail the upgrade without a reason.
 */
export function selectSubprotocol(offered: ReadonlySet<string>): string | false {
  if (offered.has(SUBPROTOCOL_ENCRYPTED)) return SUBPROTOCOL_ENCRYPTED;
  if (offered.has(SUBPROTOCOL_PLAINTEXT)) return SUBPROTOCOL_PLAINTEXT;
  return false;
}

/**
 * Server side: the mode of an upgraded connection, from the subprotocol it
 * was given.
 * @throws McpE2eError `ERR_PLAINTEXT_REFUSED` (plain MCP while not allowed),
 *   `ERR_SUBPROTOCOL` (nothing we speak was offered).
 */
export function modeOfServerConnection(selected: string, allowPlaintext: boolean): ConnectionMode {
  if (selected === SUBPROTOCOL_ENCRYPTED) return 'encrypted';
  if (selected === SUBPROTOCOL_PLAINTEXT) {
    if (allowPlaintext) return 'plaintext';
    throw new McpE2eError('ERR_PLAINTEXT_REFUSED', 'the client asked for plaintext MCP, which this server does not allow');
  }
  throw new McpE2eError('ERR_SUBPROTOCOL', `the client offered neither ${SUBPROTOCOL_ENCRYPTED} nor ${SUBPROTOCOL_PLAINTEXT}`);
}

/**
 * Client side: check the subprotocol the server chose.
 * @throws McpE2eError `ERR_SUBPROTOCOL` for anything but the one we offered.
 */
export function checkNegotiated(mode: ConnectionMode, negotiated: string): void {
  const expected = subprotocolFor(mode);
  if (negotiated !== expected) {
    throw new McpE2eError('ERR_SUBPROTOCOL', `the server chose subprotocol ${JSON.stringify(negotiated.slice(0, 64))}, expected ${expected}`);
  }
}
