/**
 * Small file helpers shared by key files and trust stores: atomic writes with
 * an explicit mode, and a bounded read that refuses files readable by others.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, chmodSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { McpE2eError } from '../errors.js';

/**
 * Write `data` to `path` atomically: a temporary file in the same directory,
 * created exclusively with `mode`, fsynced, then renamed over the target. A
 * crash leaves either the old file or the new one, never a torn file.
 * Missing parent directories are created with mode 0700.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    // The umask can only remove bits; chmod makes the mode exact either way.
    if (process.platform !== 'win32') chmodSync(tmp, mode);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dfd = openSync(dir, 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch {
    // Directory fsync is best effort (not supported on every platform).
  }
}

/**
 * Read a secret-bearing file of at most `maxBytes`, refusing it (as ssh does)
 * when group or others may read or write it.
 */
export function readPrivateFile(path: string, maxBytes: number, what: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new McpE2eError('ERR_KEY_FILE_NOT_FOUND', `${what} not found: ${path}`, { cause });
    }
    throw cause;
  }
  if (!st.isFile()) throw new McpE2eError('ERR_KEY_FILE_CORRUPT', `${what} is not a regular file: ${path}`);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw new McpE2eError(
      'ERR_KEY_FILE_PERMISSIONS',
      `permissions ${mode} for ${what} ${path} are too open: it must not be accessible by group or others. Fix with: chmod 600 ${path}`,
    );
  }
  if (st.size > maxBytes) {
    throw new McpE2eError('ERR_KEY_FILE_CORRUPT', `${what} ${path} is ${st.size} bytes, more than the ${maxBytes} allowed`);
  }
  return readFileSync(path);
}
