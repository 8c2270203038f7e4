/** IP address helpers shared by admission control (per-address buckets) and trust on first use (endpoint keys). */
import { isIPv4, isIPv6 } from 'node:net';

/** The eight 16-bit groups of an IPv6 address (a zone is ignored), or undefined if it is not one. */
export function ipv6Groups(address: string): number[] | undefined {
  const text = address.replace(/%.*$/, '');
  if (!isIPv6(text)) return undefined;
  // An embedded IPv4 address (::1.2.3.4) is the last two groups.
  const hex = text.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => Number.parseInt(h, 16)));
  const [head, tail] = hex.split('::') as [string, string | undefined];
  const first = parse(head);
  if (tail === undefined) return first;
  const last = parse(tail);
  return [...first, ...Array<number>(8 - first.length - last.length).fill(0), ...last];
}

/** The IPv4 address of an IPv4-mapped IPv6 address (`::ffff:7f00:1`, `::ffff:127.0.0.1`), else undefined. */
export function mappedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  if (!g || !g.slice(0, 6).every((v, i) => v === (i === 5 ? 0xffff : 0))) return undefined;
  const v4 = `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  return isIPv4(v4) ? v4 : undefined;
}
