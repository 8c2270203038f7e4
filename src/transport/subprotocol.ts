/**
 * WebSocket subprotocol negotiation (RFC 6455 §1.9). The mode of a
 * connection — encrypted `mcp-e2e.v2` or plain MCP `mcp` — is decided here,
 * from local configuration and the offered list only, before any message is
 * read. There is no fallback: a client offers exactly one subprotocol and
 * refuses any other answer; a server never silently serves plaintext, and
 * a plaintext-only server closes an encrypting client's connection with
 * a reason.
 */
import { SUBPROTOCOL_ENCRYPTED, SUBPROTOCOL_PLAINTEXT } from '../protocol.js';
import { McpE2eError } from '../errors.js';

export type ConnectionMode = 'encrypted' | 'plaintext';

/** The one subprotocol a client offers in `mode`. */
export function subprotocolFor(mode: ConnectionMode): string {
  return mode === 'encrypted' ? SUBPROTOCOL_ENCRYPTED : SUBPROTOCOL_PLAINTEXT;
}

/** Server side: which modes a server serves (at least one). */
export interface ServedModes {
  encrypted: boolean;
  plaintext: boolean;
}

/**
 * Server side: which offered subprotocol to answer with. A mode the server
 * serves wins, encryption first. Otherwise a subprotocol we speak is still
 * selected, so that the server can then close with a clear reason
 * (`ERR_PLAINTEXT_REFUSED`, or `ERR_SUBPROTOCOL` on a plaintext-only server)
 * rather than fail the upgrade without one.
 */
export function selectSubprotocol(offered: ReadonlySet<string>, served: ServedModes): string | false {
  if (served.encrypted && offered.has(SUBPROTOCOL_ENCRYPTED)) return SUBPROTOCOL_ENCRYPTED;
  if (offered.has(SUBPROTOCOL_PLAINTEXT)) return SUBPROTOCOL_PLAINTEXT;
  if (offered.has(SUBPROTOCOL_ENCRYPTED)) return SUBPROTOCOL_ENCRYPTED;
  return false;
}

/**
 * Server side: the mode of an upgraded connection, from the subprotocol it
 * was given.
 * @throws McpE2eError `ERR_PLAINTEXT_REFUSED` (plain MCP while not served),
 *   `ERR_SUBPROTOCOL` (encryption asked of a plaintext-only server, or
 *   nothing we speak was offered).
 */
export function modeOfServerConnection(selected: string, served: ServedModes): ConnectionMode {
  if (selected === SUBPROTOCOL_ENCRYPTED) {
    if (served.encrypted) return 'encrypted';
    throw new McpE2eError('ERR_SUBPROTOCOL', `the client asked for ${SUBPROTOCOL_ENCRYPTED}; this server serves only plaintext MCP (${SUBPROTOCOL_PLAINTEXT})`);
  }
  if (selected === SUBPROTOCOL_PLAINTEXT) {
    if (served.plaintext) return 'plaintext';
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
