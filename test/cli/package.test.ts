/**
 * Packaging: `npm pack` gives a tarball that installs globally and provides a
 * working `mcp-e2e` command and a typed library entry point.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers.js';

const npm = (args: string[], cwd: string) => spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 180_000 });

test('npm pack → npm install -g → a working mcp-e2e command and typed library', { timeout: 240_000 }, () => {
  const packDir = tempDir('mcp-e2e-pack-');
  // dist/ is already built by the test command; --ignore-scripts keeps prepack from rebuilding it under running tests.
  const pack = npm(['pack', '--ignore-scripts', '--pack-destination', packDir], ROOT);
  assert.equal(pack.status, 0, pack.stderr);
  const tarball = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'no tarball');
  const prefix = tempDir('mcp-e2e-global-');
  const install = npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(packDir, tarball)], packDir);
  assert.equal(install.status, 0, install.stderr);
  const bin = join(prefix, 'bin', 'mcp-e2e');
  const home = tempDir();
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  assert.equal(spawnSync(bin, ['keygen', '--home', home], { encoding: 'utf8' }).status, 0);
  const id = JSON.parse(spawnSync(bin, ['id', '--json', '--home', home], { encoding: 'utf8' }).stdout);
  assert.match(id.node_id, /^[0-9a-f]{64}$/);
  const pkg = join(prefix, 'lib', 'node_modules', 'mcp-e2e');
  assert.ok(existsSync(join(pkg, 'dist', 'src', 'index.d.ts')), 'type declarations missing');
  assert.ok(!existsSync(join(pkg, 'dist', 'test')), 'tests shipped in the package');
  const lib = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(join(pkg, 'dist/src/index.js'))}); console.log(typeof m.NodeIdentity.generate, typeof m.EncryptedWebSocketClientTransport)`], { encoding: 'utf8' });
  assert.equal(lib.stdout.trim(), 'function function', lib.stderr);
});
