/**
 * Every tampering is caught. A relay between a real client transport and a
 * real server (McpServer behind EncryptedWebSocketServer) alters one thing
 * per connection:
 *
 * - each field of each handshake message, value by value: first, middle and
 *   last byte of every hex field with bits 0, 3 and 7 flipped (step 3's
 *   sealed identity included); the type text; version and step numbers; the
 *   versions list, the offer and the selection;
 * - each field of a session record in both framings, signed and unsigned, in
 *   both directions: binary type, flags, epoch, counter, signature,
 *   ciphertext, tag; JSON type, epoch, nonce, ciphertext, tag, signature,
 *   sender (same position and bit classes); the same for a record of
 *   several messages;
 * - the stream: replayed, reordered, dropped, duplicated, truncated (down to
 *   an empty record: header and tag only), padded past the size limit,
 *   injected plaintext (text and binary), records and handshake messages
 *   replayed from another session, records reflected back to their sender,
 *   handshake messages replayed into the session;
 * - the end of the stream: the sealed CLOSE dropped, altered or replaced by
 *   a close frame; the tail of a session dropped and a close frame (1000,
 *   or a forged 4003 ERR_PEER_REJECTED) injected.
 *
 * For each case: the connection ends; the side that detects it reports a
 * stable error code from the set expected for that field, and the other side
 * learns that code: in a session from the sealed CLOSE (authenticated),
 * before one from the close frame (as a claim, `peerCode`); the server's MCP
 * layer saw exactly the messages before the tampered record and nothing from
 * it on (none at all when the handshake was touched: no session even
 * starts); the client's MCP layer likewise; no error message or close reason
 * carries a private key or the plaintext marker.
 *
 * The count is printed:
 *   node --test dist/test/adversarial/tamper.test.js | grep 'tamper cases'
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { inspect } from 'node:util';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import {
  EncryptedWebSocketClientTransport,
  EncryptedWebSocketServer,
  ERROR_CODES,
  McpE2eError,
  NodeIdentity,
  type EncryptedWebSocketServerTransport,
  type ErrorCode,
  type Framing,
} from '../../src/index.js';
import { ONE_ADDRESS_MANY_CLIENTS, codeOf, deferred, describeCode, makeMcpServer, within } from '../transport/helpers.js';
import { startRelay, textFrame, type Frame, type Relay, type RelayControl } from '../transport/relay.js';
import { assertClean } from './scan.js';
import { RECORD_TARGET_BYTES } from '../../src/transport/send-queue.js';

const CLIENT_SEED = Buffer.alloc(32, 0xc1);
const SERVER_SEED = Buffer.alloc(32, 0x5e);
const clientIdentity = NodeIdentity.fromPrivateKey(CLIENT_SEED);
const serverIdentity = NodeIdentity.fromPrivateKey(SERVER_SEED);
const MARKER = 'PLAINTEXT-MARKER-7a3e';
/**
 * Requests the client sends after the handshake, one per turn; the server
 * answers each. Each request and answer is larger than a record's coalescing
 * target (RECORD_TARGET_BYTES), so every message travels in a record of its
 * own and the record indices below are exact.
 */
const BURST = 4;
const PAD = 'p'.repeat(RECORD_TARGET_BYTES + 1000);
/** The message limit of both ends: small, so a record can be padded past it cheaply. */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** The tampered session frame in the burst (earlier ones are genuine and must get through). */
const K = 1;
/** Frames before the session, per direction: client→server step 1, step 3; server→client step 2. */
const HS_UP = 2;
const HS_DOWN = 1;
const CONCURRENCY = 4;

type Direction = 'up' | 'down';
interface Config {
  framing: Framing;
  signed: boolean;
  /** What the client offers, when not just `framing`. */
  offer?: Framing[];
}
interface Case {
  group: string;
  name: string;
  config: Config;
  up?: (f: Frame, i: number, control: RelayControl) => Frame[];
  down?: (f: Frame, i: number, control: RelayControl) => Frame[];
  /** Codes the server may report for this tampering. */
  codes: ErrorCode[];
  /** The handshake was tampered with: no session may start on the server. */
  handshake?: boolean;
  /** Messages the server's MCP layer must have seen (session tampering); or at most, with `serverSeenAtMost`. */
  serverSeen?: number;
  serverSeenAtMost?: number;
  /** Messages the client's MCP layer must have seen, exactly; or at most, with `clientSeenAtMost`. */
  clientSeen?: number;
  clientSeenAtMost?: number;
  /**
   * How the side that did not detect the tampering learns of it: from the
   * sealed CLOSE (`sealed`, the rule inside a session), from the close frame
   * only (`claim`), either, or not at all (`none`: it had closed itself).
   * Default: `sealed` for session cases, `either` for handshake cases.
   */
  learns?: 'sealed' | 'claim' | 'either' | 'none';
  /** The client sends its requests in one turn: one record of BURST small messages. */
  oneRecord?: boolean;
  /** The client closes once every answer is in (its CLOSE record is then the tampered one). */
  closeAfterAnswers?: boolean;
}

// ----------------------------------------------------------------- server side

interface ServerConn {
  transport: EncryptedWebSocketServerTransport;
  seen: JSONRPCMessage[];
}
let server: EncryptedWebSocketServer;
let relay: Relay;
let serverUrl: string;
/** Per case (by relay URL query), what the server did. */
const byCase = new Map<string, { conns: ServerConn[]; errors: Error[]; wake: () => void }>();
/** The relay's upstream local port (the server's remote port) → case id. */
const caseOfPort = new Map<number, string>();
/** Cases refused as expected (every check of runCase passed), by group. */
const counts: Record<string, number> = {};
/** Cases started, counted before anything is checked: refusals are counted apart from it. */
let casesStarted = 0;
const codeHistogram: Record<string, number> = {};

function caseState(id: string) {
  let s = byCase.get(id);
  if (!s) {
    s = { conns: [], errors: [], wake: () => {} };
    byCase.set(id, s);
  }
  return s;
}

/** Recorded frames of a genuine earlier session, per configuration, for cross-session replays. */
const recorded = new Map<string, { up: Frame[]; down: Frame[] }>();
const configKey = (c: Config) => `${c.framing}/${c.signed ? 'signed' : 'unsigned'}`;
const CONFIGS: Config[] = [
  { framing: 'binary', signed: true },
  { framing: 'binary', signed: false },
  { framing: 'json', signed: true },
  { framing: 'json', signed: false },
];

/** Cases running, by id (the client connects to the relay with `?case=id`). */
const active = new Map<string, Case>();

before(async () => {
  server = new EncryptedWebSocketServer({
    identity: serverIdentity,
    allowedPeers: [clientIdentity.nodeId],
    // Every case is a connection of the same client through the relay's one address.
    limits: { ...ONE_ADDRESS_MANY_CLIENTS, maxConnectionsPerPeer: 2 ** 24, maxMessageBytes: MAX_MESSAGE_BYTES },
    onConnection: async (t) => {
      const state = caseState(caseOfPort.get(portOf(t)) ?? 'unknown');
      const conn: ServerConn = { transport: t, seen: [] };
      state.conns.push(conn);
      t.onmessage = (m) => conn.seen.push(m); // chained by McpServer.connect
      t.onerror = (e) => {
        state.errors.push(e);
        state.wake();
      };
      await makeMcpServer().connect(t);
    },
    onError: (e, info) => {
      const state = caseState(caseOfPort.get(info.remotePort ?? -1) ?? 'unknown');
      state.errors.push(e);
      state.wake();
    },
  });
  const addr = await server.listen(0, '127.0.0.1');
  serverUrl = `ws://127.0.0.1:${addr.port}/mcp`;
  relay = await startRelay({
    upstream: serverUrl,
    onUpstreamOpen: (req, upstream) => {
      const port = (upstream as unknown as { _socket: { localPort: number } })._socket.localPort;
      caseOfPort.set(port, caseIdOf(req));
    },
    toServer: (f, i, req, control) => {
      const c = active.get(caseIdOf(req));
      return c?.up ? c.up(f, i, control) : [f];
    },
    toClient: (f, i, req, control) => {
      const c = active.get(caseIdOf(req));
      return c?.down ? c.down(f, i, control) : [f];
    },
  });
  // One genuine session per configuration, recorded for cross-session replays.
  for (const config of CONFIGS) {
    const rec = { up: [] as Frame[], down: [] as Frame[] };
    recorded.set(configKey(config), rec);
    await runCase({
      group: 'control',
      name: `genuine ${configKey(config)}`,
      config,
      up: (f) => (rec.up.push(f), [f]),
      down: (f) => (rec.down.push(f), [f]),
      codes: [],
    });
  }
});

after(async () => {
  await relay.close();
  await server.close();
});

function caseIdOf(req: IncomingMessage): string {
  return new URL(req.url ?? '/', 'http://x').searchParams.get('case') ?? '';
}
function portOf(t: EncryptedWebSocketServerTransport): number {
  return (t.socket as unknown as { _socket?: { remotePort?: number } })._socket?.remotePort ?? -1;
}


// -------------------------------------------------------------- client side

let nextCase = 0;

async function runCase(c: Case): Promise<string | undefined> {
  const id = `c${nextCase++}`;
  if (c.codes.length > 0) casesStarted++;
  active.set(id, c);
  const state = caseState(id);
  const t = new EncryptedWebSocketClientTransport(`${relay.url}?case=${id}`, {
    identity: clientIdentity,
    expectedPeer: serverIdentity.nodeId,
    framings: c.config.offer ?? [c.config.framing],
    signatures: c.config.signed,
    maxMessageBytes: MAX_MESSAGE_BYTES,
  });
  const clientErrors: Error[] = [];
  const clientSeen: JSONRPCMessage[] = [];
  const closed = deferred();
  t.onerror = (e) => clientErrors.push(e);
  t.onmessage = (m) => clientSeen.push(m);
  t.onclose = () => closed.resolve();
  const started = await t.start().then(
    () => true,
    () => false,
  );
  if (started) {
    for (let k = 0; k < BURST; k++) {
      if (c.oneRecord) t.send({ jsonrpc: '2.0', id: k, method: 'ping', params: { _meta: { marker: MARKER } } }).catch(() => {});
      else {
        t.send({ jsonrpc: '2.0', id: k, method: 'tools/call', params: { name: 'echo', arguments: { message: `${MARKER} ${PAD}` } } }).catch(() => {});
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
  if (c.codes.length === 0 || c.closeAfterAnswers) {
    // Wait for every answer, then close.
    while (clientSeen.length < BURST && !t.closed) await within(new Promise<void>((resolve) => setTimeout(resolve, 2)), 1000, 'answers');
    if (c.codes.length === 0) {
      await t.close();
      active.delete(id);
      return undefined;
    }
    void t.close();
  }
  await within(closed.promise, 10_000, `${c.name}: the connection to end`);
  // The server's report may trail the client's close by a moment.
  const deadline = Date.now() + 5000;
  while (state.errors.length === 0 && Date.now() < deadline) {
    await within(new Promise<void>((resolve) => (state.wake = resolve)), 5000, `${c.name}: the server's report`).catch(() => {});
  }
  active.delete(id);
  const label = `${c.group} / ${c.name}`;
  assert.ok(state.errors.length > 0, `${label}: the server reported nothing`);
  for (const e of [...state.errors, ...clientErrors]) {
    assert.ok(e instanceof McpE2eError && ERROR_CODES.includes(e.code), `${label}: not a stable error: ${inspect(e)}`);
  }
  // Detected here (not learned from the peer, not a closure of unknown cause).
  const local = (list: Error[]) => list.find((e) => e instanceof McpE2eError && !e.fromPeer && e.code !== 'ERR_CONNECTION_CLOSED') as McpE2eError | undefined;
  const byServer = local(state.errors);
  const byClient = local(clientErrors);
  const detection = byServer && c.codes.includes(byServer.code) ? byServer : byClient && c.codes.includes(byClient.code) ? byClient : undefined;
  assert.ok(detection, `${label}: server reported ${state.errors.map(describeCode).join(', ')}, client ${clientErrors.map(describeCode).join(', ')}; expected one of ${c.codes.join(', ')}`);
  const other = detection === byServer ? clientErrors : state.errors;
  const learns = c.learns ?? (c.handshake ? 'either' : 'sealed');
  if (learns !== 'none') {
    const sealed = other.some((e) => e instanceof McpE2eError && e.fromPeer && e.code === detection.code);
    const claimed = other.some((e) => e instanceof McpE2eError && !e.fromPeer && (e.peerCode === detection.code || (detection.code === 'ERR_SESSION_TRUNCATED' && e.code === 'ERR_SESSION_TRUNCATED')));
    const ok = learns === 'sealed' ? sealed : learns === 'claim' ? claimed : sealed || claimed;
    assert.ok(ok, `${label}: detected ${detection.code} on the ${detection === byServer ? 'server' : 'client'}; the other side learned ${other.map(describeCode).join(', ') || 'nothing'} (expected: ${learns})`);
  }
  const first = detection;
  // The MCP layers.
  const conns = state.conns;
  if (c.handshake) {
    assert.equal(conns.length, 0, `${label}: a session started on the server despite a tampered handshake`);
  } else if (!(c.serverSeenAtMost !== undefined && conns.length === 0)) {
    // (With `serverSeenAtMost`, the connection may also fail before the application ever got it.)
    assert.equal(conns.length, 1, `${label}: ${conns.length} server sessions`);
    const seen = conns[0]!.seen.map((m) => (m as { id?: unknown }).id);
    if (c.serverSeenAtMost !== undefined) assert.ok(seen.length <= c.serverSeenAtMost && seen.every((a, i) => a === i), `${label}: the server's MCP layer saw ${JSON.stringify(seen)}`);
    else assert.deepEqual(seen, Array.from({ length: c.serverSeen! }, (_, i) => i), `${label}: the server's MCP layer saw ${JSON.stringify(seen)}`);
  }
  const answers = clientSeen.map((m) => (m as { id?: unknown }).id);
  if (c.clientSeen !== undefined) assert.deepEqual(answers, Array.from({ length: c.clientSeen }, (_, i) => i), `${label}: the client saw ${JSON.stringify(answers)}`);
  if (c.clientSeenAtMost !== undefined) {
    assert.ok(answers.length <= c.clientSeenAtMost && answers.every((a, i) => a === i), `${label}: the client saw ${JSON.stringify(answers)}`);
  }
  // Secrets: nothing reported on either side carries a private key or the plaintext.
  const texts = [...state.errors, ...clientErrors].map((e) => [e.message, String(e.stack), inspect(e, { depth: 4 })].join('\n')).join('\n');
  assertClean(texts, { clientKey: CLIENT_SEED, serverKey: SERVER_SEED, marker: MARKER });
  counts[c.group] = (counts[c.group] ?? 0) + 1;
  codeHistogram[first.code] = (codeHistogram[first.code] ?? 0) + 1;
  return first.code;
}

// ----------------------------------------------------------------- mutations

const BITS = [0, 3, 7];
/** First, middle and last index of a field of `n` units, without repeats. */
const positions = (n: number) => [...new Set([0, Math.floor(n / 2), n - 1])];
const flipByte = (b: Buffer, i: number, bit: number) => {
  const c = Buffer.from(b);
  c[i] = c[i]! ^ (1 << bit);
  return c;
};
const asBuffer = (f: Frame) => f.data;
const withData = (f: Frame, data: Buffer): Frame => ({ data, isBinary: f.isBinary });

/** Apply `edit` to the JSON document of a text frame. */
function editDoc(f: Frame, edit: (doc: Record<string, unknown>) => void): Frame {
  const doc = JSON.parse(f.data.toString('utf8')) as Record<string, unknown>;
  edit(doc);
  return textFrame(JSON.stringify(doc));
}
/** Flip a bit of byte `i` of the hex field at `path` (value level: the result is valid hex). */
function flipHexField(path: string[], i: number, bit: number) {
  return (f: Frame) =>
    editDoc(f, (doc) => {
      let o = doc as Record<string, unknown>;
      for (const p of path.slice(0, -1)) o = o[p] as Record<string, unknown>;
      const key = path.at(-1)!;
      o[key] = flipByte(Buffer.from(o[key] as string, 'hex'), i, bit).toString('hex');
    });
}
/** Flip a bit of the raw text of a string value (may leave ASCII: then the text frame is not UTF-8). */
function flipTextOfValue(key: string, i: number, bit: number) {
  return (f: Frame) => {
    const text = f.data.toString('utf8');
    const at = text.indexOf(`"${key}":"`) + key.length + 4 + i;
    return withData(f, flipByte(f.data, at, bit));
  };
}
function setValue(path: string[], value: (old: unknown) => unknown) {
  return (f: Frame) =>
    editDoc(f, (doc) => {
      let o = doc as Record<string, unknown>;
      for (const p of path.slice(0, -1)) o = o[p] as Record<string, unknown>;
      o[path.at(-1)!] = value(o[path.at(-1)!]);
    });
}
/** Apply `mutate` to frame number `at` of the direction, pass the rest. */
const at = (index: number, mutate: (f: Frame) => Frame[] | Frame) => (f: Frame, i: number) => {
  if (i !== index) return [f];
  const out = mutate(f);
  return Array.isArray(out) ? out : [out];
};

// ----------------------------------------------------------------- the cases

/** Both framings offered, so that the offer can be reordered or narrowed. */
const HS_CONFIG: Config = { framing: 'binary', signed: true, offer: ['binary', 'json'] };
const HANDSHAKE_CODES: ErrorCode[] = [
  'ERR_HANDSHAKE_MALFORMED',
  'ERR_HANDSHAKE_UNEXPECTED_MESSAGE',
  'ERR_HANDSHAKE_UNSUPPORTED_VERSION',
  'ERR_HANDSHAKE_BAD_KEY',
  'ERR_HANDSHAKE_LOW_ORDER_KEY',
  'ERR_HANDSHAKE_NODE_ID_MISMATCH',
  'ERR_HANDSHAKE_BAD_SIGNATURE',
  'ERR_HANDSHAKE_BAD_MAC',
  'ERR_HANDSHAKE_OPTIONS',
  'ERR_HANDSHAKE_REFLECTION',
  'ERR_HANDSHAKE_DOWNGRADE',
  'ERR_PEER_KEY_CHANGED', // a server identity or node id swapped by the relay: refused by the pin
];

function handshakeCases(): Case[] {
  const cases: Case[] = [];
  const steps: Array<{ step: number; dir: Direction; index: number; hex: Array<[string[], number]>; extra: Array<[string, (f: Frame) => Frame]> }> = [
    {
      step: 1,
      dir: 'up',
      index: 0,
      hex: [[['public_key'], 32], [['random'], 32]],
      extra: [
        ['versions narrowed to [2, 1] (a version hidden)', setValue(['versions'], () => [2, 1])],
        ['versions widened to [3, 2]', setValue(['versions'], () => [3, 2])],
        ['versions emptied', setValue(['versions'], () => [])],
        ['options.signatures negated', setValue(['options', 'signatures'], (v) => !v)],
        ['options.framings reordered', setValue(['options', 'framings'], (v) => [...(v as string[])].reverse())],
        ['options.framings narrowed', setValue(['options', 'framings'], (v) => (v as string[]).slice(0, 1))],
        ['options.framings unknown', setValue(['options', 'framings'], () => ['carrier-pigeon'])],
      ],
    },
    {
      step: 2,
      dir: 'down',
      index: 0,
      hex: [[['public_key'], 32], [['random'], 32], [['identity_key'], 32], [['node_id'], 32], [['signature'], 64], [['mac'], 32]],
      extra: [
        ['options.signatures negated', setValue(['options', 'signatures'], (v) => !v)],
        ['options.framing changed', setValue(['options', 'framing'], (v) => (v === 'json' ? 'binary' : 'json'))],
        ['options.framing unknown', setValue(['options', 'framing'], () => 'smoke-signals')],
      ],
    },
    {
      step: 3,
      dir: 'up',
      index: 1,
      // The sealed identity: I_i (bytes 0-31), sig_i (32-95), mac_i (96-127), the tag (128-143).
      hex: [[['ciphertext'], 144]],
      extra: [
        ...([10, 50, 100, 130] as const).map((i): [string, (f: Frame) => Frame] => [`ciphertext byte ${i} bit 1`, flipHexField(['ciphertext'], i, 1)]),
        ['ciphertext cut to 143 bytes', setValue(['ciphertext'], (v) => (v as string).slice(2))],
      ],
    },
  ];
  for (const s of steps) {
    const add = (name: string, mutate: (f: Frame) => Frame) =>
      cases.push({
        group: `handshake step ${s.step}`,
        name,
        config: HS_CONFIG,
        [s.dir]: at(s.index, mutate),
        codes: HANDSHAKE_CODES,
        handshake: true,
      });
    for (const [path, n] of s.hex) for (const i of positions(n)) for (const bit of BITS) add(`${path.join('.')} byte ${i} bit ${bit}`, flipHexField(path, i, bit));
    for (const i of positions('key_exchange'.length)) for (const bit of BITS) add(`type char ${i} bit ${bit}`, flipTextOfValue('type', i, bit));
    for (const bit of [0, 1, 3]) add(`version bit ${bit}`, setValue(['version'], (v) => (v as number) ^ (1 << bit)));
    for (const bit of [0, 1, 3]) add(`step bit ${bit}`, setValue(['step'], (v) => (v as number) ^ (1 << bit)));
    for (const [name, mutate] of s.extra) add(name, mutate);
    // From a genuine earlier session.
    add('replaced by the same step of another session', () => {
      const rec = recorded.get(configKey(HS_CONFIG))!;
      return s.dir === 'up' ? rec.up[s.index]! : rec.down[s.index]!;
    });
  }
  // The offer and selection are allowed to differ in one way only (the server may add signatures): check both configs.
  cases.push({
    group: 'handshake step 1',
    name: 'signatures stripped from the offer of a signing client',
    config: { framing: 'json', signed: true },
    up: at(0, setValue(['options', 'signatures'], () => false)),
    codes: ['ERR_HANDSHAKE_OPTIONS'],
    handshake: true,
  });
  return cases;
}

function binaryFields(signed: boolean, length: number): Array<[string, number, number]> {
  const sigEnd = signed ? 78 : 14;
  const fields: Array<[string, number, number]> = [
    ['type', 0, 1],
    ['flags', 1, 2],
    ['epoch', 2, 6],
    ['counter', 6, 14],
  ];
  if (signed) fields.push(['signature', 14, 78]);
  fields.push(['ciphertext', sigEnd, length - 16], ['tag', length - 16, length]);
  return fields;
}

const FIELD_CODES: Record<string, ErrorCode[]> = {
  type: ['ERR_FRAME_MALFORMED', 'ERR_INVALID_MESSAGE'],
  // The signed flag: a signed frame read as unsigned (or the reverse); other bits are reserved.
  flags: ['ERR_FRAME_MALFORMED', 'ERR_FRAME_SIGNATURE'],
  // Epoch + 1 is legal and selects the next key: the tag then fails.
  epoch: ['ERR_FRAME_EPOCH', 'ERR_FRAME_DECRYPT'],
  // Above 2^53 − 1 the counter is malformed; a zero nonce prefix is required.
  counter: ['ERR_FRAME_COUNTER', 'ERR_FRAME_MALFORMED'],
  nonce: ['ERR_FRAME_COUNTER', 'ERR_FRAME_MALFORMED'],
  signature: ['ERR_FRAME_SIGNATURE'],
  ciphertext: ['ERR_FRAME_DECRYPT'],
  tag: ['ERR_FRAME_DECRYPT'],
  sender: ['ERR_FRAME_SENDER'],
};

/** Session-frame field cases, both directions. */
/**
 * Session-record field cases, both directions; with `oneRecord`, the client's
 * BURST requests travel in one record (toward the server only), and that
 * record is the one tampered with.
 */
function frameCases(config: Config, oneRecord = false): Case[] {
  const cases: Case[] = [];
  const BITS_HERE = oneRecord ? [0] : BITS;
  for (const dir of (oneRecord ? ['up'] : ['up', 'down']) as Direction[]) {
    const index = oneRecord ? HS_UP : (dir === 'up' ? HS_UP : HS_DOWN) + K;
    const seen = oneRecord ? { serverSeen: 0, clientSeenAtMost: 0, oneRecord } : dir === 'up' ? { serverSeen: K, clientSeenAtMost: K } : { serverSeen: BURST, clientSeen: K };
    const group = `${configKey(config)} ${oneRecord ? `record of ${BURST} messages` : 'frame'} field ${dir === 'up' ? '→server' : '→client'}`;
    const add = (field: string, name: string, mutate: (f: Frame) => Frame) =>
      cases.push({ group, name: `${field} ${name}`, config, [dir]: at(index, mutate), codes: FIELD_CODES[field]!, ...seen });
    if (config.framing === 'binary') {
      // The frame length differs per message; fields are located in the frame at hand.
      const sample = binaryFields(config.signed, 200);
      for (const [field, start, end] of sample) {
        for (const p of positions(end - start)) {
          for (const bit of oneRecord ? BITS_HERE : field === 'type' || field === 'flags' ? [0, 1, 7] : BITS) {
            add(field, `byte ${p} bit ${bit}`, (f) => {
              const [, s, e] = binaryFields(config.signed, f.data.length).find(([n]) => n === field)!;
              const i = Math.min(s + p, e - 1);
              return withData(f, flipByte(asBuffer(f), i, bit));
            });
          }
        }
      }
    } else {
      for (const [field, bytes] of [['nonce', 12], ['ciphertext', 18], ['sender', 32], ...(config.signed ? [['signature', 64]] : [])] as Array<[string, number]>) {
        for (const p of positions(bytes)) {
          for (const bit of BITS_HERE) {
            add(field, `byte ${p} bit ${bit}`, (f) =>
              editDoc(f, (doc) => {
                const b = Buffer.from(doc[field] as string, 'hex');
                // ciphertext: positions within the ciphertext part, before the tag.
                const i = field === 'ciphertext' ? Math.min(p, b.length - 17) : Math.min(p, b.length - 1);
                doc[field] = flipByte(b, i, bit).toString('hex');
              }),
            );
          }
        }
      }
      for (const p of positions(16)) {
        for (const bit of BITS_HERE) {
          add('tag', `byte ${p} bit ${bit}`, (f) =>
            editDoc(f, (doc) => {
              const b = Buffer.from(doc.ciphertext as string, 'hex');
              doc.ciphertext = flipByte(b, b.length - 16 + p, bit).toString('hex');
            }),
          );
        }
      }
      for (const bit of [0, 3, 7, 31]) add('epoch', `bit ${bit}`, setValue(['epoch'], (v) => ((v as number) ^ 2 ** bit) >>> 0));
      for (const i of positions('encrypted'.length)) for (const bit of BITS_HERE) add('type', `char ${i} bit ${bit}`, flipTextOfValue('type', i, bit));
    }
  }
  return cases;
}

/** Replays, reorders, drops, duplicates, truncations and injections, both directions. */
function streamCases(config: Config): Case[] {
  const cases: Case[] = [];
  const rec = () => recorded.get(configKey(config))!;
  const plaintext = textFrame(JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }));
  const plaintextBinary: Frame = { data: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 98, method: 'tools/list' })), isBinary: true };
  for (const dir of ['up', 'down'] as Direction[]) {
    const base = dir === 'up' ? HS_UP : HS_DOWN;
    const kIndex = base + K;
    let held: Frame | undefined;
    let previous: Frame | undefined;
    const group = `${configKey(config)} stream ${dir === 'up' ? '→server' : '→client'}`;
    // n = how many genuine messages reach the receiving side's MCP layer.
    const add = (name: string, hook: (f: Frame, i: number) => Frame[], codes: ErrorCode[], n: number) =>
      cases.push({
        group,
        name,
        config,
        [dir]: (f: Frame, i: number) => {
          const out = hook(f, i);
          if (i === kIndex - 1) previous = f;
          return out;
        },
        codes,
        ...(dir === 'up' ? { serverSeen: n, clientSeenAtMost: n } : { serverSeen: BURST, clientSeen: n }),
      });
    add('replay of the previous frame after this one', (f, i) => (i === kIndex ? [f, previous!] : [f]), ['ERR_FRAME_COUNTER'], K + 1);
    add('duplicate', (f, i) => (i === kIndex ? [f, f] : [f]), ['ERR_FRAME_COUNTER'], K + 1);
    add('reorder (swap with the next)', (f, i) => {
      if (i === kIndex) {
        held = f;
        return [];
      }
      if (i === kIndex + 1) return [f, held!];
      return [f];
    }, ['ERR_FRAME_COUNTER'], K);
    add('drop', (f, i) => (i === kIndex ? [] : [f]), ['ERR_FRAME_COUNTER'], K);
    for (const [name, cut] of [['to 1 byte', (n: number) => 1], ['to the header', () => 14], ['to half', (n: number) => Math.floor(n / 2)], ['by its last byte', (n: number) => n - 1]] as Array<[string, (n: number) => number]>) {
      add(`truncate ${name}`, (f, i) => (i === kIndex ? [withData(f, f.data.subarray(0, cut(f.data.length)))] : [f]), ['ERR_FRAME_MALFORMED', 'ERR_FRAME_DECRYPT', 'ERR_INVALID_MESSAGE'], K);
    }
    add('inject a plaintext JSON-RPC text frame', (f, i) => (i === kIndex ? [plaintext, f] : [f]), ['ERR_FRAME_MALFORMED'], K);
    add('inject a plaintext JSON-RPC binary frame', (f, i) => (i === kIndex ? [plaintextBinary, f] : [f]), ['ERR_FRAME_MALFORMED'], K);
    add('replace by the same frame of another session', (f, i) => (i === kIndex ? [(dir === 'up' ? rec().up : rec().down)[kIndex]!] : [f]), ['ERR_FRAME_DECRYPT'], K);
    add('inject a handshake message (step 1 of another session) into the session', (f, i) => (i === kIndex ? [(dir === 'up' ? rec().up : rec().down)[0]!, f] : [f]), ['ERR_FRAME_MALFORMED'], K);
    // An empty record: no entry left, only the header (and signature) and a tag.
    add('truncate to an empty record (header and tag only)', (f, i) => {
      if (i !== kIndex) return [f];
      if (config.framing === 'json') return [editDoc(f, (d) => (d.ciphertext = (d.ciphertext as string).slice(-32)))];
      return [withData(f, Buffer.concat([f.data.subarray(0, config.signed ? 78 : 14), f.data.subarray(f.data.length - 16)]))];
    }, ['ERR_FRAME_MALFORMED'], K);
    // Past the size limit: refused by the WebSocket layer from the frame header, before anything is buffered.
    cases.push({
      group,
      name: 'pad a record past the size limit',
      config,
      [dir]: (f: Frame, i: number) => (i === kIndex ? [withData(f, Buffer.concat([f.data, Buffer.alloc(2 * MAX_MESSAGE_BYTES + 1024, 0x30)]))] : [f]),
      codes: ['ERR_FRAME_TOO_LARGE'],
      // ws closes with 1009 itself, so no CLOSE can go out: the peer sees the close frame's claim.
      learns: 'claim',
      ...(dir === 'up' ? { serverSeenAtMost: K, clientSeenAtMost: K } : { serverSeen: BURST, clientSeen: K }),
    });
  }
  // Reflection: a frame sent back to its own sender (wrong direction key; in JSON the sender is not the peer).
  let captured: Frame | undefined;
  cases.push({
    group: `${configKey(config)} stream →client`,
    name: 'reflect a client frame back to the client',
    config,
    up: (f, i) => {
      if (i === HS_UP + K) captured = f;
      return [f];
    },
    down: (f, i) => (i === HS_DOWN + K && captured ? [captured] : [f]),
    codes: config.framing === 'json' ? ['ERR_FRAME_SENDER'] : ['ERR_FRAME_DECRYPT'],
    serverSeen: BURST,
    clientSeen: K,
  });
  return [...cases, ...closeCases(config)];
}

/**
 * The end of the stream. The client's CLOSE (up, after every answer) is
 * dropped, altered or replaced by a close frame: the server must not take
 * that for an orderly end. Toward the client, the tail of the session is
 * dropped and a close frame injected (1000, or a forged refusal).
 */
function closeCases(config: Config): Case[] {
  const group = `${configKey(config)} end of stream`;
  const closeIndex = HS_UP + BURST;
  const up = (name: string, hook: (f: Frame, control: RelayControl) => Frame[], codes: ErrorCode[]): Case => ({
    group,
    name: `client CLOSE ${name}`,
    config,
    up: (f, i, control) => (i === closeIndex ? hook(f, control) : [f]),
    codes,
    closeAfterAnswers: true,
    learns: 'none', // the client closed on purpose
    serverSeen: BURST,
    clientSeen: BURST,
  });
  // The last byte of the tag, in either framing.
  const flip = (f: Frame) =>
    config.framing === 'json'
      ? editDoc(f, (d) => {
          const ct = Buffer.from(d.ciphertext as string, 'hex');
          d.ciphertext = flipByte(ct, ct.length - 1, 0).toString('hex');
        })
      : withData(f, flipByte(f.data, f.data.length - 1, 0));
  const cases: Case[] = [
    up('dropped, the close frame (1000) passed', () => [], ['ERR_SESSION_TRUNCATED']),
    up('with its tag altered', (f) => [flip(f)], ['ERR_FRAME_DECRYPT']),
    up('replaced by a close frame 4003 ERR_PEER_REJECTED', (_f, control) => (control.closeServer(4003, 'ERR_PEER_REJECTED'), []), ['ERR_SESSION_TRUNCATED']),
  ];
  // The previous record (the last request) replayed in the CLOSE's place.
  let previous: Frame | undefined;
  cases.push({
    ...up('replaced by a replay of the record before it', () => [previous!], ['ERR_FRAME_COUNTER']),
    up: (f, i) => {
      if (i === closeIndex - 1) previous = f;
      return i === closeIndex ? [previous!] : [f];
    },
  });
  // Toward the client: from answer K on, nothing arrives; then a close frame.
  for (const [name, code, reason] of [['1000', 1000, ''], ['4003 ERR_PEER_REJECTED (forged)', 4003, 'ERR_PEER_REJECTED']] as Array<[string, number, string]>) {
    let cut = false;
    cases.push({
      group,
      name: `answers from ${K} on dropped, then a close frame ${name}`,
      config,
      down: (f, i, control) => {
        if (i < HS_DOWN + K) return [f];
        if (!cut) {
          cut = true;
          control.closeClient(code, reason);
        }
        return [];
      },
      codes: ['ERR_SESSION_TRUNCATED'],
      // The relay passes the client's answer on to the server, which was cut short too.
      learns: 'claim',
      serverSeenAtMost: BURST,
      clientSeen: K,
    });
  }
  return cases;
}

/** Run cases `CONCURRENCY` at a time (each its own connection, told apart by the relay's upstream port). */
async function runAll(cases: Case[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < cases.length) await runCase(cases[next++]!);
    }),
  );
}

test('tampered handshake messages: every field, every position class, replayed from another session', async () => {
  await runAll(handshakeCases());
});

for (const config of CONFIGS) {
  test(`tampered session frames (${configKey(config)}): every field, both directions, and the stream`, async () => {
    await runAll([...frameCases(config), ...frameCases(config, true), ...streamCases(config)]);
  });
}

test('tamper case count', () => {
  const refused = Object.values(counts).reduce((a, b) => a + b, 0);
  const total = casesStarted;
  process.stdout.write(`# tamper cases: ${refused} refused of ${total}, none reached the MCP layer\n`);
  process.stdout.write(`# tamper cases by group: ${JSON.stringify(counts)}\n`);
  process.stdout.write(`# tamper cases by detected code: ${JSON.stringify(codeHistogram)}\n`);
  assert.ok(total >= 500, `only ${total} cases ran`);
  assert.equal(refused, total, 'every tampered case was refused');
});
