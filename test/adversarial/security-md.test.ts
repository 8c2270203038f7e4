/**
 * SECURITY.md stays in step with the code: every error code with its close
 * code, and every default limit with its value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, McpE2eError } from '../../src/errors.js';
import * as limits from '../../src/transport/limits.js';
import { DEFAULT_RECONNECT } from '../../src/transport/reconnect.js';
import { MAX_RATE_BUCKETS } from '../../src/transport/admission.js';
import { CHILD_GRACE_MS } from '../../src/cli/child.js';
import { ALLOWLIST_POLL_MS, DEFAULT_CONNECT_KEEPALIVE_MS, DEFAULT_SERVE_MAX_CONNECTIONS, REFUSAL_LOG_INTERVAL_MS, REFUSALS_LOGGED_PER_INTERVAL } from '../../src/cli/limits.js';
import { DEFAULT_MAX_QUEUED_MESSAGES } from '../../src/seed/receive-queue.js';
import * as record from '../../src/discovery/record.js';
import * as registry from '../../src/discovery/registry.js';
import * as mesh from '../../src/mesh/node.js';
import * as mdnsWire from '../../src/discovery/sources/mdns-wire.js';
import * as mdnsCache from '../../src/discovery/sources/mdns-cache.js';

const text = readFileSync(fileURLToPath(new URL('../../../SECURITY.md', import.meta.url)), 'utf8');
const LOCAL_ONLY = new Set(['ERR_SESSION_TRUNCATED', 'ERR_KEY_FILE_PERMISSIONS', 'ERR_KEY_FILE_CORRUPT', 'ERR_KEY_FILE_NOT_FOUND', 'ERR_KEY_FILE_EXISTS', 'ERR_INVALID_NODE_ID', 'ERR_FILE_PERMISSIONS', 'ERR_FILE_LOCKED']);

test('SECURITY.md lists every error code with its close code', () => {
  for (const code of ERROR_CODES) {
    const row = text.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} is missing from the error table`);
    const close = row.split('|')[2]!.trim();
    assert.equal(close, LOCAL_ONLY.has(code) ? '—' : String(new McpE2eError(code, '').closeCode), `${code}: close code in SECURITY.md`);
  }
});

test('SECURITY.md states the default of every limit', () => {
  const mib = (n: number) => `${n / 1024 / 1024} MiB`;
  const expect: Array<[string, string]> = [
    ['maxConnectionsPerAddress', String(limits.DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)],
    ['maxPendingHandshakes', String(limits.DEFAULT_MAX_PENDING_HANDSHAKES)],
    ['maxConnections', limits.DEFAULT_MAX_CONNECTIONS.toLocaleString('en-US')],
    ['upgradeTimeoutMs', `${limits.DEFAULT_UPGRADE_TIMEOUT_MS / 1000} s`],
    ['handshakeTimeoutMs', `${limits.DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000} s`],
    ['sendHighWaterMarkBytes', mib(limits.DEFAULT_SEND_HIGH_WATER_MARK_BYTES)],
    ['maxSendBufferBytes', mib(limits.DEFAULT_MAX_SEND_BUFFER_BYTES)],
    ['keepaliveIntervalMs', `${limits.DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS / 1000} s on servers`],
    ['MAX_UPGRADE_HEADER_BYTES', `${limits.MAX_UPGRADE_HEADER_BYTES / 1024} KiB`],
    ['PRE_AUTH_MAX_FRAGMENTS', String(limits.PRE_AUTH_MAX_FRAGMENTS)],
    ['MAX_FRAGMENTS_PER_MESSAGE', limits.MAX_FRAGMENTS_PER_MESSAGE.toLocaleString('en-US')],
    ['CLOSE_GRACE_MS', `${limits.CLOSE_GRACE_MS / 1000} s`],
    ['maxPendingHandshakesPerAddress', String(limits.DEFAULT_MAX_PENDING_HANDSHAKES_PER_ADDRESS)],
    ['handshakeStep1TimeoutMs', `${limits.DEFAULT_HANDSHAKE_STEP1_TIMEOUT_MS / 1000} s`],
    ['handshakeBurstPerAddress', `${limits.DEFAULT_HANDSHAKE_BURST_PER_ADDRESS} at once, then ${limits.DEFAULT_HANDSHAKE_RATE_PER_ADDRESS} per second`],
    ['maxConnectionsPerPeer', String(limits.DEFAULT_MAX_CONNECTIONS_PER_PEER)],
    ['keepaliveIntervalMs', `(${DEFAULT_CONNECT_KEEPALIVE_MS / 1000} s in \`connect\`)`],
    ['`serve --max-connections`', String(DEFAULT_SERVE_MAX_CONNECTIONS)],
    ['`serve --max-connections-per-peer`', String(limits.DEFAULT_MAX_CONNECTIONS_PER_PEER)],
    ['`connect --keepalive`', `${DEFAULT_CONNECT_KEEPALIVE_MS / 1000} s`],
    ['Child shutdown grace', `${CHILD_GRACE_MS / 1000} s after SIGTERM`],
    ['Allowlist change noticed', `within ${ALLOWLIST_POLL_MS / 1000} s`],
    ['Refused connections logged', `${REFUSALS_LOGGED_PER_INTERVAL} per ${REFUSAL_LOG_INTERVAL_MS / 1000} s`],
    ['maxQueuedMessages', `${DEFAULT_MAX_QUEUED_MESSAGES} per connection`],
    ['`connect --reconnect` backoff', `${DEFAULT_RECONNECT.initialDelayMs} ms doubling to ${DEFAULT_RECONNECT.maxDelayMs / 1000} s`],
    ['Record size', `${record.MAX_PEER_RECORD_BYTES.toLocaleString('en-US')} bytes`],
    ['Record size', `at most ${record.MAX_RECORD_ADDRESSES} addresses`],
    ['Record lifetime', `at most ${record.MAX_RECORD_LIFETIME_MS / 86_400_000} day; ours ${record.DEFAULT_RECORD_LIFETIME_MS / 3_600_000} hour`],
    ['Clock skew', `${record.RECORD_CLOCK_SKEW_MS / 60_000} min`],
    ['Registry node ids', registry.DEFAULT_MAX_PEERS.toLocaleString('en-US')],
    ['Registry file', mib(registry.DEFAULT_MAX_REGISTRY_FILE_BYTES)],
    ['Hints and sources per node id', `${registry.MAX_HINTS_PER_PEER} each`],
    ['Registry writes', `one per ${registry.DEFAULT_REGISTRY_FLUSH_INTERVAL_MS / 1000} s`],
    ['Records per session', `${mesh.SESSION_RECORD_BURST}, then 1 per ${mesh.SESSION_RECORD_INTERVAL_MS / 1000} s`],
    ['Lookups of one `connect`', `${mesh.DEFAULT_LOOKUP_TIMEOUT_MS / 1000} s`],
    ['mDNS packet size', `${mdnsWire.MAX_MDNS_PACKET_BYTES.toLocaleString('en-US')} bytes`],
    ['TXT record', `${mdnsWire.MAX_TXT_BYTES.toLocaleString('en-US')} bytes`],
    ['Services cached', String(mdnsCache.DEFAULT_MAX_SERVICES)],
    ['New services', `${mdnsCache.DEFAULT_NEW_SERVICES_BURST} at once, then ${mdnsCache.DEFAULT_NEW_SERVICES_PER_SECOND} per second`],
    ['Addresses per host', String(mdnsCache.DEFAULT_MAX_ADDRESSES_PER_HOST)],
    ['TTL honoured', `${mdnsCache.DEFAULT_MAX_TTL_MS / 3_600_000} hours`],
  ];
  for (const [name, value] of expect) {
    const rows = text.split('\n').filter((l) => l.startsWith('|') && (l.split('|')[1] ?? '').includes(name));
    const row = rows.find((l) => l.split('|')[1]!.trim().startsWith(`\`${name}\``)) ?? rows[0];
    assert.ok(row, `${name} is missing from the limits table`);
    assert.ok(row.includes(value), `${name}: expected ${value} in "${row.slice(0, 160)}"`);
  }
  assert.equal(limits.DEFAULT_IDLE_TIMEOUT_MS, 0, 'SECURITY.md says idleTimeoutMs is off by default');
  assert.equal(limits.DEFAULT_CLIENT_KEEPALIVE_INTERVAL_MS, 0, 'SECURITY.md says client keepalive is off by default');
  assert.equal(limits.DEFAULT_MAX_CONNECTIONS + limits.DEFAULT_MAX_PENDING_HANDSHAKES, 1152);
  assert.ok(text.includes(`at most ${MAX_RATE_BUCKETS.toLocaleString('en-US')} are kept`), 'the bound of the rate map');
});
