/**
 * Scans text for secrets in every common text form (hex either case,
 * base64, base64url, raw latin1). Shared by the secrets, fuzz and tamper
 * tests.
 */
import assert from 'node:assert/strict';

/** Every common text form of a secret (forms shorter than 16 characters are too likely by chance). */
export function forms(secret: Buffer): string[] {
  return [secret.toString('hex'), secret.toString('hex').toUpperCase(), secret.toString('base64'), secret.toString('base64url'), secret.toString('latin1')].filter((s) => s.length >= 16);
}

/** Fail if `text` contains any form of any secret (strings are searched as they are). */
export function assertClean(text: string, secrets: Record<string, Buffer | string>): void {
  for (const [name, s] of Object.entries(secrets)) {
    const list = typeof s === 'string' ? [s] : forms(s);
    for (const f of list) assert.ok(!text.includes(f), `${name} appears in the output`);
  }
}
