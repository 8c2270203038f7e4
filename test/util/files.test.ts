/**
 * The shared file mechanism (src/util/files.ts): locked read-modify-write
 * across real processes, crash safety under kill -9, and ssh-style
 * StrictModes (owner, group/world-writable files and directories, symlinks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs, { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync, utimesSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPrivateFile, readTrustedFile, updateFileLocked, STALE_LOCK_MS } from '../../src/util/files.js';
import { throwsCode } from '../helpers/pair.js';

const FILES = fileURLToPath(new URL('../../src/util/files.js', import.meta.url));
const dir = () => mkdtempSync(join(tmpdir(), 'mcp-e2e-files-'));
const isRoot = process.geteuid?.() === 0;

/** A child process that adds `count` distinct keys to a JSON object in `path`, one locked update each. */
function writer(path: string, name: string, count: number): Promise<number> {
  const script = `
    const { updateFileLocked } = await import(${JSON.stringify(FILES)});
    for (let i = 0; i < ${count}; i++) {
      updateFileLocked(${JSON.stringify(path)}, { what: 'test file', maxBytes: 1 << 20 }, (cur) => {
        const doc = cur ? JSON.parse(cur.toString()) : {};
        doc[${JSON.stringify(name)} + i] = true;
        return JSON.stringify(doc);
      });
    }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
}

test('two processes updating one file under the lock lose nothing (2 x 300 updates)', async () => {
  const path = join(dir(), 'shared.json');
  const codes = await Promise.all([writer(path, 'a', 300), writer(path, 'b', 300)]);
  assert.deepEqual(codes, [0, 0]);
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(Object.keys(doc).length, 600);
  assert.deepEqual(readdirSync(join(path, '..')), ['shared.json'], 'no lock or temporary file left behind');
});

test('kill -9 during writes: the file stays readable, and the next update removes strays and a dead lock', async () => {
  const path = join(dir(), 'shared.json');
  const script = `
    const { updateFileLocked } = await import(${JSON.stringify(FILES)});
    const big = 'x'.repeat(200000);
    for (let i = 0; ; i++) updateFileLocked(${JSON.stringify(path)}, { what: 'test file', maxBytes: 1 << 22 }, () => JSON.stringify({ i, big }));`;
  for (let round = 0; round < 5; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    // Kill it mid-stream: only once it has written (a loaded machine starts processes slowly).
    for (let waited = 0; !existsSync(path) && waited < 30_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 30 + round * 37));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const text = readFileSync(path, 'utf8');
    assert.equal(typeof JSON.parse(text).i, 'number', 'a whole file, never a torn one');
  }
  // Make any leftover look like a crash: a lock of a dead process, a stray temporary file.
  writeFileSync(`${path}.lock`, '999999999\n');
  writeFileSync(join(path, '..', '.shared.json.0123456789ab.tmp'), 'partial');
  updateFileLocked(path, { what: 'test file', maxBytes: 1 << 22 }, () => '{"after":true}');
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { after: true });
  assert.deepEqual(readdirSync(join(path, '..')), ['shared.json']);
});

test('a live lock is waited for and then refused with ERR_FILE_LOCKED; an old one is broken', () => {
  const path = join(dir(), 'f.json');
  writeFileSync(`${path}.lock`, `${process.ppid}\n`); // a live process that is not us
  const err = throwsCode(() => updateFileLocked(path, { what: 'test file', maxBytes: 100, lockTimeoutMs: 50 }, () => 'x'), 'ERR_FILE_LOCKED');
  assert.match(err.message, /f\.json\.lock/);
  const old = (Date.now() - STALE_LOCK_MS - 1000) / 1000;
  utimesSync(`${path}.lock`, old, old);
  updateFileLocked(path, { what: 'test file', maxBytes: 100, lockTimeoutMs: 50 }, () => 'x');
  assert.equal(readFileSync(path, 'utf8'), 'x');
});

test('an update that throws leaves the file untouched and releases the lock', () => {
  const path = join(dir(), 'f.json');
  writeFileSync(path, 'old', { mode: 0o600 });
  assert.throws(() => updateFileLocked(path, { what: 'test file', maxBytes: 100 }, () => { throw new Error('boom'); }), /boom/);
  assert.equal(readFileSync(path, 'utf8'), 'old');
  updateFileLocked(path, { what: 'test file', maxBytes: 100, lockTimeoutMs: 10 }, () => 'new');
  assert.equal(readFileSync(path, 'utf8'), 'new');
});

test('StrictModes: group/world-writable files and directories are refused, with the fix', () => {
  const d = dir();
  const path = join(d, 'allowed_peers');
  writeFileSync(path, 'x', { mode: 0o600 });
  assert.equal(readTrustedFile(path, 100, 'allowlist')!.toString(), 'x');
  chmodSync(path, 0o666);
  const err = throwsCode(() => readTrustedFile(path, 100, 'allowlist'), 'ERR_FILE_PERMISSIONS');
  assert.match(err.message, /chmod go-w/);
  throwsCode(() => updateFileLocked(path, { what: 'allowlist', maxBytes: 100 }, () => 'y'), 'ERR_FILE_PERMISSIONS');
  chmodSync(path, 0o644); // readable by others is fine for a trust file; writable is not
  assert.equal(readTrustedFile(path, 100, 'allowlist')!.toString(), 'x');
  chmodSync(d, 0o777);
  throwsCode(() => readTrustedFile(path, 100, 'allowlist'), 'ERR_FILE_PERMISSIONS');
  throwsCode(() => readTrustedFile(join(d, 'missing'), 100, 'allowlist'), 'ERR_FILE_PERMISSIONS');
  chmodSync(d, 0o700);
  assert.equal(readTrustedFile(join(d, 'missing'), 100, 'allowlist'), undefined);
  throwsCode(() => readTrustedFile(path, 0, 'allowlist'), 'ERR_KEY_FILE_CORRUPT');
});

test('a symlink is followed and checked on reading, and refused where a file is written', () => {
  const d = dir();
  const target = join(d, 'real');
  writeFileSync(target, 'x', { mode: 0o600 });
  const link = join(d, 'link');
  symlinkSync(target, link);
  assert.equal(readTrustedFile(link, 100, 'allowlist')!.toString(), 'x');
  const err = throwsCode(() => updateFileLocked(link, { what: 'allowlist', maxBytes: 100 }, () => 'y'), 'ERR_FILE_PERMISSIONS');
  assert.match(err.message, /symbolic link/);
  assert.equal(readFileSync(target, 'utf8'), 'x');
  // The directory of the file really read counts too: one others can write is refused through the link.
  const open = join(d, 'open');
  mkdirSync(open, { mode: 0o700 });
  writeFileSync(join(open, 'config.json'), '{}', { mode: 0o600 });
  symlinkSync(join(open, 'config.json'), join(d, 'via-link'));
  assert.equal(readTrustedFile(join(d, 'via-link'), 100, 'config file')!.toString(), '{}');
  chmodSync(open, 0o777);
  throwsCode(() => readTrustedFile(join(d, 'via-link'), 100, 'config file'), 'ERR_FILE_PERMISSIONS');
});

test('a symlink swapped between the open and the directory check is refused: the file read is the one whose directory was checked', () => {
  const d = dir();
  const open = join(d, 'open');
  mkdirSync(open, { mode: 0o700 });
  writeFileSync(join(open, 'allowed_peers'), 'written by others\n', { mode: 0o600 });
  chmodSync(open, 0o777); // anyone may write here
  const safe = join(d, 'safe');
  mkdirSync(safe, { mode: 0o700 });
  writeFileSync(join(safe, 'allowed_peers'), 'ours\n', { mode: 0o600 });
  const link = join(d, 'allowed_peers');
  symlinkSync(join(open, 'allowed_peers'), link);
  // The swap lands exactly between open(2) and the resolution of the path (what a racing writer of `open` could aim for).
  const realpath = fs.realpathSync;
  fs.realpathSync = ((p: string, ...rest: unknown[]) => {
    if (p === link) {
      rmSync(link);
      symlinkSync(join(safe, 'allowed_peers'), link);
    }
    return (realpath as (...a: unknown[]) => string)(p, ...rest);
  }) as typeof fs.realpathSync;
  syncBuiltinESMExports();
  try {
    const err = throwsCode(() => readTrustedFile(link, 100, 'allowlist'), 'ERR_FILE_PERMISSIONS');
    assert.match(err.message, /changed while it was being read/);
  } finally {
    fs.realpathSync = realpath;
    syncBuiltinESMExports();
  }
  // Without a race the same link is read.
  assert.equal(readTrustedFile(link, 100, 'allowlist')!.toString(), 'ours\n');
});

test('a FIFO where a trust file or key is expected is refused at once, never waited on', () => {
  const d = dir();
  const fifo = join(d, 'allowed_peers');
  const made = spawnSync('mkfifo', [fifo]);
  assert.equal(made.status, 0, 'mkfifo');
  // Opened without O_NONBLOCK, open(2) would wait for a writer forever: try it in a child, with a deadline.
  const files = new URL('../../src/util/files.js', import.meta.url).href;
  const script = `const { readTrustedFile, readPrivateFile } = await import(${JSON.stringify(files)});
const codes = [];
for (const read of [() => readTrustedFile(${JSON.stringify(fifo)}, 100, 'allowlist'), () => readPrivateFile(${JSON.stringify(fifo)}, 100, 'identity')]) {
  try { read(); codes.push('read'); } catch (e) { codes.push(e.code ?? e.message); }
}
process.stdout.write(codes.join(' '));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.signal, null, 'the read did not hang');
  assert.equal(r.stdout, 'ERR_FILE_PERMISSIONS ERR_KEY_FILE_CORRUPT');
});

test('files of another user are refused (trust files and identity keys)', { skip: isRoot ? false : 'needs root to chown' }, () => {
  const d = dir();
  const path = join(d, 'known_peers.json');
  writeFileSync(path, '{}', { mode: 0o600 });
  chownSync(path, 65534, 65534);
  const err = throwsCode(() => readTrustedFile(path, 100, 'known peers file'), 'ERR_FILE_PERMISSIONS');
  assert.match(err.message, /belongs to uid 65534/);
  throwsCode(() => readPrivateFile(path, 100, 'identity key file'), 'ERR_KEY_FILE_PERMISSIONS');
  const sub = join(d, 'home');
  mkdirSync(sub, { mode: 0o700 });
  chownSync(sub, 65534, 65534);
  throwsCode(() => readTrustedFile(join(sub, 'x'), 100, 'registry'), 'ERR_FILE_PERMISSIONS');
});
