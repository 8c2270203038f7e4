/**
 * Leaving records (PROTOCOL.md §14.7): what a node publishes on a clean
 * shutdown so that the mesh forgets it at once instead of when its record
 * expires. A record like any other (§13), with a greater seq, no address,
 * and the attribute 0x03 with an empty value.
 */
import { LABEL } from '../../protocol.js';
import type { NodeIdentity } from '../../identity/identity.js';
import { decodePeerRecord, encodePeerRecordBody, MAX_RECORD_LIFETIME_MS, type PeerRecord } from '../record.js';
import { LEAVING_ATTRIBUTE } from './protocol.js';

/** True for a leaving record (§14.7: attribute 0x03 present). */
export function isLeaving(record: PeerRecord): boolean {
  return record.attributes.has(LEAVING_ATTRIBUTE);
}

/** Shortest lifetime of a leaving record, ms (it lives at least as long as the record it replaces). */
export const LEAVING_LIFETIME_MS = 5 * 60_000;

/**
 * Make and sign the leaving record that replaces `previous` (our current
 * record). It expires no earlier than `previous`: a receiver keeps it in
 * place of `previous` until then, so no copy of an older record still on
 * its way can bring the node back.
 */
export function createLeavingRecord(identity: NodeIdentity, previous: PeerRecord, nowMs: number): PeerRecord {
  if (previous.nodeId !== identity.nodeId) throw new RangeError('"previous" expected a record of this identity');
  const issuedAtMs = nowMs;
  const expiresAtMs = Math.min(issuedAtMs + MAX_RECORD_LIFETIME_MS, Math.max(issuedAtMs + LEAVING_LIFETIME_MS, previous.expiresAtMs));
  const body = Buffer.concat([
    encodePeerRecordBody(identity.publicKey, {
      seq: Math.max(previous.seq + 1, nowMs),
      issuedAtMs,
      expiresAtMs,
      addresses: [],
      protocolVersions: previous.protocolVersions,
    }),
    // The attribute goes last: tags are in increasing order and this body has no other attribute.
    Buffer.from([LEAVING_ATTRIBUTE, 0, 0]),
  ]);
  return decodePeerRecord(Buffer.concat([body, identity.sign(LABEL.PEER_RECORD_SIGNATURE, body)]));
}
