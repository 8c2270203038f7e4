/**
 * Relay memory with a child that never reads (issue 9): `serve` around a
 * child that never reads its stdin; a client sends `--mib` MiB messages,
 * each awaited, until one has not gone out after 4 s (the client is made to
 * wait). Prints how many went out and serve's RSS growth (Linux /proc).
 *
 *   node dist/bench/relay-memory.js --mib 1
 *   node dist/bench/relay-memory.js --mib 16
 */
import { parseArgs } from 'node:util';
import { nonReadingChildMemory } from '../test/cli/helpers.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '16' }, max: { type: 'string', default: '64' } } });
const { sent, grownBytes } = await nonReadingChildMemory(Number(values.mib), Number(values.max), 4000);
process.stdout.write(`messages of ${values.mib} MiB: ${sent} sent before the client was made to wait (of ${values.max}); serve RSS +${(grownBytes / 1024 / 1024).toFixed(1)} MiB\n`);
