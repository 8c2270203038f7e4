/**
 * A throwaway self-signed ECDSA P-256 certificate for the wss baseline, made
 * with the `openssl` CLI at the start of a run (Node 20 cannot issue X.509
 * certificates itself). Nothing is committed; the files live in a temporary
 * directory that `dispose()` removes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCert {
  /** PEM certificate (also the client's trust anchor). */
  cert: string;
  /** PEM private key. */
  key: string;
  /** Paths, for handing to a child process. */
  certPath: string;
  keyPath: string;
  dispose(): void;
}

/** Throws when `openssl` is missing or fails; the caller then skips wss. */
export function makeSelfSignedCert(): SelfSignedCert {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-bench-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    return {
      cert: readFileSync(certPath, 'utf8'),
      key: readFileSync(keyPath, 'utf8'),
      certPath,
      keyPath,
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
