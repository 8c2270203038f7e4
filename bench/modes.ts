/** The transport modes the benchmark compares. */
import type { Framing } from '../src/protocol.js';

export type ModeId = 'ws' | 'wss' | 'e2e-json-signed' | 'e2e-json' | 'e2e-binary-signed' | 'e2e-binary';

export interface Mode {
  id: ModeId;
  /** Row label in tables. */
  label: string;
  kind: 'ws' | 'wss' | 'encrypted';
  /** Encrypted modes only. */
  framing?: Framing;
  /** Encrypted modes only: per-message Ed25519 signatures. */
  signatures?: boolean;
}

export const MODES: readonly Mode[] = Object.freeze([
  { id: 'ws', label: 'plaintext ws', kind: 'ws' },
  { id: 'wss', label: 'wss (TLS 1.3)', kind: 'wss' },
  { id: 'e2e-json-signed', label: 'e2e JSON-hex + sig (seed default)', kind: 'encrypted', framing: 'json', signatures: true },
  { id: 'e2e-json', label: 'e2e JSON-hex, no sig', kind: 'encrypted', framing: 'json', signatures: false },
  { id: 'e2e-binary-signed', label: 'e2e binary + sig', kind: 'encrypted', framing: 'binary', signatures: true },
  { id: 'e2e-binary', label: 'e2e binary, no sig', kind: 'encrypted', framing: 'binary', signatures: false },
] as Mode[]);

export function modeById(id: string): Mode {
  const m = MODES.find((x) => x.id === id);
  if (!m) throw new RangeError(`unknown mode "${id}" (known: ${MODES.map((x) => x.id).join(', ')})`);
  return m;
}
