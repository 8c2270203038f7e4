/**
 * File helpers shared by key files, trust files and the peer registry:
 * atomic writes with an exact mode, bounded reads that refuse files another
 * user could have written (ssh's StrictModes), and read-modify-write under an
 * exclusive lock so that several processes of one user sharing a home (a
 * `serve` and several `connect`s) never lose each other's updates.
 *
 * Everything here is synchronous: trust decisions run inside the handshake,
 * which is synchronous, and every operation takes milliseconds.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
  linkSync,
  realpathSync,
  type Stats,
} from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { McpE2eError } from '../errors.js';

const POSIX = process.platform !== 'win32';

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Write `data` to `path` atomically: a temporary file in the same directory,
 * created exclusively (never through a symlink) with `mode`, fsynced, then
 * renamed over the target. A crash leaves either the old file or the new
 * one, never a torn file (at worst a stray temporary file, which
 * `updateFileLocked` removes). Missing parent directories are created with
 * mode 0700.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = tempName(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    // The umask can only remove bits; fchmod on the open file makes the mode exact.
    if (POSIX) fchmodSync(fd, mode);
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
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Directory fsync is best effort (not supported on every platform).
  }
}

function unsafe(message: string): McpE2eError {
  return new McpE2eError('ERR_FILE_PERMISSIONS', message);
}

/**
 * ssh's StrictModes for one file or directory: it must belong to the
 * effective user (a directory may also belong to root) and must not be
 * writable by group or others; otherwise another user could have put a node
 * id, a key or a record there. POSIX only.
 * @throws McpE2eError `ERR_FILE_PERMISSIONS`, with the command that fixes it.
 */
export function checkOwnership(path: string, st: Stats, what: string): void {
  if (!POSIX) return;
  const euid = process.geteuid!();
  if (st.uid !== euid && !(st.isDirectory() && st.uid === 0)) {
    throw unsafe(`${what} ${path} belongs to uid ${st.uid}, not to you (uid ${euid}): refusing to use it. Fix with: chown ${euid} ${path}`);
  }
  if ((st.mode & 0o022) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw unsafe(`permissions ${mode} for ${what} ${path} let group or others write it: refusing to use it. Fix with: chmod go-w ${path}`);
  }
}

/**
 * StrictModes for the directory that holds `path` (the mcp-e2e home). A missing directory is fine.
 * @throws McpE2eError `ERR_FILE_PERMISSIONS`, with the command that fixes it.
 */
export function checkDirectory(path: string, what: string): void {
  const dir = dirname(path);
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  checkOwnership(dir, st, `the directory of the ${what}`);
}

/**
 * Flags for opening a file to read that someone else may have replaced by a
 * FIFO or a device: O_NONBLOCK, so the open itself cannot hang (a FIFO with
 * no writer blocks open(2) before any check could run); the fstat check
 * after it refuses anything but a regular file.
 */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

/** Read all of an open file whose (fstat) size is `size`. */
function readOpenFile(fd: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, off);
    if (n === 0) break;
    off += n;
  }
  return off === buf.length ? buf : buf.subarray(0, off);
}

/**
 * Read a file that must not be writable by anyone but us (a trust file, the
 * peer registry), at most `maxBytes`. A symlink is followed, and its target
 * is checked; the file's directory is checked too.
 * @returns the bytes, or undefined when the file does not exist.
 * @throws McpE2eError `ERR_FILE_PERMISSIONS` (owner, mode, not a regular
 *   file), `ERR_KEY_FILE_CORRUPT` (larger than `maxBytes`).
 */
export function readTrustedFile(path: string, maxBytes: number, what: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      checkDirectory(path, what);
      return undefined;
    }
    throw err;
  }
  try {
    checkDirectory(path, what);
    // Checked on the descriptor: no race with a swap of the path.
    const st = fstatSync(fd);
    // Through a symlink, the directory of the file really read must be ours too (whoever can
    // write it chooses which file that is). The path resolved here must still lead to the
    // file opened: a link swapped between the open and this check is refused.
    const real = realpathSync(path);
    if (real !== path) {
      if (dirname(real) !== dirname(path)) checkDirectory(real, what);
      const now = statSync(real);
      if (now.dev !== st.dev || now.ino !== st.ino) throw unsafe(`${what} ${path} changed while it was being read (a symlink swapped?)`);
    }
    if (!st.isFile()) throw unsafe(`${what} ${path} is not a regular file`);
    checkOwnership(path, st, what);
    if (st.size > maxBytes) throw new McpE2eError('ERR_KEY_FILE_CORRUPT', `${what} ${path} is ${st.size} bytes, more than the ${maxBytes} allowed`);
    return readOpenFile(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

/**
 * Read a secret-bearing file of at most `maxBytes`, refusing it (as ssh does)
 * when group or others may read or write it, or when it belongs to another
 * user.
 */
export function readPrivateFile(path: string, maxBytes: number, what: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new McpE2eError('ERR_KEY_FILE_NOT_FOUND', `${what} not found: ${path}`, { cause });
    }
    throw cause;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new McpE2eError('ERR_KEY_FILE_CORRUPT', `${what} is not a regular file: ${path}`);
    if (POSIX && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new McpE2eError(
        'ERR_KEY_FILE_PERMISSIONS',
        `permissions ${mode} for ${what} ${path} are too open: it must not be accessible by group or others. Fix with: chmod 600 ${path}`,
      );
    }
    if (POSIX && st.uid !== process.geteuid!()) {
      throw new McpE2eError('ERR_KEY_FILE_PERMISSIONS', `${what} ${path} belongs to uid ${st.uid}, not to you (uid ${process.geteuid!()}): refusing to use another user's key`);
    }
    if (st.size > maxBytes) {
      throw new McpE2eError('ERR_KEY_FILE_CORRUPT', `${what} ${path} is ${st.size} bytes, more than the ${maxBytes} allowed`);
    }
    return readOpenFile(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

/** Options of `updateFileLocked`. */
export interface LockedUpdateOptions {
  /** What the file is, for messages ("known peers file"). */
  what: string;
  /** Largest file accepted on reading, bytes. */
  maxBytes: number;
  /** Mode of the written file. Default 0600. */
  mode?: number;
  /** Give up waiting for the lock after this long (ms). Default 5,000. */
  lockTimeoutMs?: number;
}

/** A lock older than this is left over from a process that died while holding it (ms); updates take milliseconds. */
export const STALE_LOCK_MS = 10_000;
const DEFAULT_LOCK_TIMEOUT_MS = 5_000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when the lock at `lockPath` (whose stat is `st`) was left by a process that is gone. */
function isStale(lockPath: string, st: Stats): boolean {
  if (Date.now() - st.mtimeMs > STALE_LOCK_MS) return true;
  let text = '';
  try {
    const fd = openSync(lockPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(32);
      text = buf.subarray(0, readSync(fd, buf, 0, 32, 0)).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
  const pid = Number.parseInt(text, 10);
  // An empty lock is one whose owner died between creating and writing it (or is writing it now).
  if (!Number.isInteger(pid) || pid <= 0) return Date.now() - st.mtimeMs > 1_000;
  return pid !== process.pid && !isAlive(pid);
}

/**
 * Break a stale lock without ever removing a fresh one: the lock is renamed
 * aside first (atomic), and removed only if the renamed file is the very one
 * judged stale; otherwise (another process broke it and locked again in
 * between) it is put back.
 */
function breakStaleLock(lockPath: string, stale: Stats): void {
  const aside = `${lockPath}.${randomBytes(6).toString('hex')}.stale`;
  try {
    renameSync(lockPath, aside);
  } catch {
    return;
  }
  const moved = lstatSync(aside);
  if (moved.ino === stale.ino && moved.dev === stale.dev) {
    rmSync(aside, { force: true });
    return;
  }
  try {
    linkSync(aside, lockPath);
  } catch {
    // Someone locked again meanwhile; the lock we moved belongs to a process that will unlink its own path.
  }
  rmSync(aside, { force: true });
}

function acquireLock(path: string, what: string, timeoutMs: number): string {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lockPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return lockPath;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let st: Stats | undefined;
    try {
      st = lstatSync(lockPath);
    } catch {
      continue; // released just now
    }
    if (isStale(lockPath, st)) {
      breakStaleLock(lockPath, st);
      continue;
    }
    if (Date.now() > deadline) {
      throw new McpE2eError(
        'ERR_FILE_LOCKED',
        `${what} ${path} is locked by another process (${lockPath}); if no mcp-e2e process is running, remove that file`,
      );
    }
    sleepSync(2 + Math.floor(Math.random() * 8));
  }
}

/** Temporary files of `path` left by a writer killed mid-write (only removed while holding the lock). */
function removeStrayTemporaries(path: string): void {
  const prefix = `.${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(prefix) && name.endsWith('.tmp') && name.length === prefix.length + 12 + 4) rmSync(join(dirname(path), name), { force: true });
  }
}

/**
 * Read-modify-write `path` under an exclusive lock (`path.lock`, created
 * with O_EXCL; a lock left by a dead process is broken safely): lock,
 * re-read what is there now, `update` it, write the result atomically,
 * unlock. Two processes updating one file never lose each other's changes,
 * as long as both go through here. `update` gets the current bytes
 * (undefined when the file does not exist) and returns the new contents, or
 * undefined to leave the file as it is. The file, its directory and the
 * path itself are checked as `readTrustedFile` does; a symlink at `path` is
 * refused (it would be replaced, not written through).
 * @throws McpE2eError `ERR_FILE_LOCKED` (timed out waiting), `ERR_FILE_PERMISSIONS`,
 *   `ERR_KEY_FILE_CORRUPT` (too large), or whatever `update` throws (the file is then untouched).
 */
export function updateFileLocked(path: string, options: LockedUpdateOptions, update: (current: Buffer | undefined) => string | Uint8Array | undefined): void {
  const { what, maxBytes } = options;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  checkDirectory(path, what);
  try {
    if (lstatSync(path).isSymbolicLink()) {
      throw unsafe(`${what} ${path} is a symbolic link: mcp-e2e does not write through links (replace the link with the file itself)`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const lockPath = acquireLock(path, what, options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
  try {
    removeStrayTemporaries(path);
    const next = update(readTrustedFile(path, maxBytes, what));
    if (next !== undefined) writeFileAtomic(path, next, options.mode ?? 0o600);
  } finally {
    try {
      unlinkSync(lockPath);
    } catch {
      // Broken by another process after STALE_LOCK_MS: nothing left to release.
    }
  }
}
