/**
 * Range-based set reconciliation over a `GossipStore` (PROTOCOL.md §14.4):
 * what a node sends first, and how it answers the ranges of a
 * `gossip_sync`. Pure and stateless: the same store and the same incoming
 * ranges always give the same answer, so a responder keeps nothing between
 * the messages of an exchange.
 *
 * Cost grows with the differences: two stores that agree compare one
 * fingerprint; each difference costs about log16(n) levels of 16
 * fingerprints, then a list of at most `LEAF_ITEMS` entries.
 */
import {
  childPrefixes,
  fingerprint,
  LEAF_ITEMS,
  MAX_RANGE_ENTRIES,
  MAX_SYNC_ENTRIES,
  MAX_SYNC_RANGES,
  type Entry,
  type SyncRange,
} from './protocol.js';
import type { GossipStore } from './store.js';

/**
 * Most bytes of JSON for the ranges of one `gossip_sync`: with the envelope
 * (`{"type":"gossip_sync","x":4294967295,"n":15,"ranges":[]}`, 57 bytes) the
 * message stays within the 65,536 bytes of a control message (§6.9), which
 * 256 ranges and 512 entries at their longest would pass.
 */
export const MAX_SYNC_RANGE_BYTES = 65_536 - 64;
/** JSON bytes of a fingerprint range with prefix `p`, with its comma. */
const fpBytes = (p: string) => 49 + p.length;
/** JSON bytes of a list range (`ids` or `have`) of `n` entries under `p`, at most (a seq of 16 digits), with its comma. */
const listBytes = (p: string, n: number) => 19 + p.length + 86 * n;

/** What answering a `gossip_sync` gives. */
export interface ReconcileAnswer {
  /** Ranges of the reply (empty: nothing more to do on our side). */
  readonly ranges: SyncRange[];
  /** Node ids the peer holds a newer record of than we do (or we have none): to pull with `gossip_want`. */
  readonly wants: string[];
}

/** The fingerprint range of `prefix` as this store sees it. */
function fpRange(store: GossipStore, prefix: string): SyncRange {
  const s = store.summary(prefix);
  return { p: prefix, fp: fingerprint(s.sum, s.count) };
}

/** The first message of an exchange: the whole node-id space as one range (§14.4.1). */
export function initialRanges(store: GossipStore): SyncRange[] {
  const s = store.summary('');
  return [s.count <= LEAF_ITEMS ? { p: '', ids: store.entries('') } : { p: '', fp: fingerprint(s.sum, s.count) }];
}

/**
 * Answer the ranges of a received `gossip_sync` (§14.4.2), within the
 * limits of one message: a range that does not fit is echoed back as our
 * fingerprint of it, so the peer takes it up in its next message.
 */
export function answerRanges(store: GossipStore, incoming: readonly SyncRange[]): ReconcileAnswer {
  const out: SyncRange[] = [];
  const wants: string[] = [];
  let entries = 0;
  let bytes = 0;
  // Bytes of echoing every range from i on: the room kept for the ranges still to be processed.
  const echoBytes: number[] = new Array<number>(incoming.length + 1).fill(0);
  for (let i = incoming.length - 1; i >= 0; i--) echoBytes[i] = echoBytes[i + 1]! + fpBytes(incoming[i]!.p);
  incoming.forEach((range, i) => {
    // Every range still to be processed may need one echo: keep room for them.
    const reserve = incoming.length - i - 1;
    const fits = (ranges: number, entryCount: number, size: number) =>
      out.length + ranges + reserve <= MAX_SYNC_RANGES && entries + entryCount <= MAX_SYNC_ENTRIES && bytes + size + echoBytes[i + 1]! <= MAX_SYNC_RANGE_BYTES;
    const splitBytes = 16 * fpBytes(range.p + '0');
    const echo = () => {
      out.push(fpRange(store, range.p));
      bytes += fpBytes(range.p);
    };
    // Splitting a fingerprint range, an empty child is sent as an empty list (shorter than a
    // fingerprint, and final). Splitting an `ids` range, the peer's whole list is known, so the
    // children we hold nothing under need nothing more and are left out. Echoed when the 16 do not fit.
    const split = (afterList: boolean) => {
      if (!fits(16, 0, splitBytes)) return echo();
      for (const c of childPrefixes(range.p)) {
        const s = store.summary(c);
        if (s.count > 0) out.push({ p: c, fp: fingerprint(s.sum, s.count) });
        else if (!afterList) out.push({ p: c, ids: [] });
      }
      bytes += splitBytes;
    };
    // A list range of `count` entries (made only if it fits), else the echo.
    const sendList = (count: number, make: () => SyncRange) => {
      const size = listBytes(range.p, count);
      if (!fits(1, count, size)) return echo();
      out.push(make());
      entries += count;
      bytes += size;
    };

    if ('fp' in range) {
      const s = store.summary(range.p);
      if (fingerprint(s.sum, s.count) === range.fp) return;
      if (s.count <= LEAF_ITEMS) sendList(s.count, () => ({ p: range.p, ids: store.entries(range.p) }));
      else split(false);
      return;
    }

    const list = 'ids' in range ? range.ids : range.have;
    for (const [id, seq] of list) {
      const mine = store.get(id);
      if (!mine || mine.seq < seq) wants.push(id);
    }
    if ('have' in range) return; // a `have` is the end of its range: never answered

    // An `ids` range is the peer's whole list under p: what we hold beyond it is exactly what it lacks.
    const extra = extraEntries(store, range.p, list);
    if (extra === undefined || extra.length > MAX_RANGE_ENTRIES) split(true);
    else if (extra.length > 0) sendList(extra.length, () => ({ p: range.p, have: extra }));
  });
  return { ranges: out, wants };
}

/**
 * Our entries under `prefix` that `theirs` (the peer's complete list there)
 * lacks or holds with a lower seq; undefined when we hold so many that
 * they cannot fit in one `have` whatever the list says.
 */
function extraEntries(store: GossipStore, prefix: string, theirs: readonly Entry[]): Entry[] | undefined {
  const count = store.summary(prefix).count;
  if (count > MAX_RANGE_ENTRIES + theirs.length) return undefined;
  const seqOf = new Map(theirs);
  return store.entries(prefix).filter(([id, seq]) => {
    const t = seqOf.get(id);
    return t === undefined || t < seq;
  });
}
