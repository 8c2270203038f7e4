/**
 * `mcp-e2e discover [--timeout S]`: what the local network offers now over
 * mDNS (like `avahi-browse -rt _mcp-e2e._tcp`), each entry marked with what
 * the registry already knows of its node id (`new`, `discovered`,
 * `verified`, `trusted`, `blocked`). Read-only: nothing is stored, nothing
 * is trusted. Parses and prints; the work is `browseOnce`.
 */
import { fingerprintOf } from '../identity/identity.js';
import { PeerAllowList } from '../identity/trust.js';
import { PeerRegistry } from '../discovery/registry.js';
import { browseOnce } from '../discovery/sources/mdns.js';
import type { HomePaths } from './home.js';
import type { Logger } from './log.js';
import type { Values } from './main.js';
import { UsageError } from './usage.js';

/** Default listening time, seconds: the first three queries (at ~0, 1 and 2 s) and their answers. */
export const DEFAULT_DISCOVER_TIMEOUT_S = 3;

function parseTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_DISCOVER_TIMEOUT_S * 1000;
  const s = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || s <= 0 || s > 3600) throw new UsageError(`--timeout expects seconds, more than 0 and at most 3600, got ${JSON.stringify(value)}`);
  return Math.round(s * 1000);
}

export async function discoverCommand(values: Values, paths: HomePaths, out: (line: string) => void, log: Logger): Promise<number> {
  const timeoutMs = parseTimeout(values.timeout);
  const services = await browseOnce(timeoutMs, { onWarning: (message, fields) => log.debug(message, fields) });
  const allowed = PeerAllowList.fromFile(paths.allowedPeers);
  const registry = new PeerRegistry({ path: paths.registry, isTrusted: (id) => allowed.has(id), flushIntervalMs: 0 });
  const rows = services.map((s) => ({
    name: s.instance,
    node_id: s.nodeId,
    state: registry.stateOf(s.nodeId) ?? 'new',
    port: s.port,
    addresses: [...s.urls],
    protocol_versions: [...s.protocolVersions],
    key: s.publicKey !== undefined,
  }));
  rows.sort((a, b) => a.name.localeCompare(b.name));
  if (values.json) {
    out(JSON.stringify(rows));
    return 0;
  }
  if (rows.length === 0) {
    out(`no mcp-e2e node answered within ${timeoutMs / 1000} s`);
    return 0;
  }
  const width = Math.max(4, ...rows.map((r) => r.name.length));
  out(`${'NAME'.padEnd(width)}  ${'NODE'.padEnd(24)}  ${'STATE'.padEnd(10)}  ADDRESSES`);
  for (const r of rows) out(`${r.name.padEnd(width)}  ${fingerprintOf(r.node_id).padEnd(24)}  ${r.state.padEnd(10)}  ${r.addresses.join(' ')}`);
  return 0;
}
