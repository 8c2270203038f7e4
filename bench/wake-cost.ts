/**
 * What a round trip costs beyond the work done in it, as a function of how
 * long the other side is busy (docs/BENCHMARKS.md, "Round trips").
 *
 *   node dist/bench/wake-cost.js [--rounds N] [--busy 0,50,100,...]
 *
 * Plain `ws`, no encryption: an echo server in a child process spins for
 * `busy` µs on each 1 KB message before echoing it; the client (this
 * process) sends one message at a time and times the round trip. On a
 * machine where a waiting process wakes at a fixed cost, p50 − busy is the
 * same for every busy time; where a process that waits longer wakes more
 * slowly (virtual CPUs that halt and are descheduled by the host), it grows
 * with the busy time. The second case makes per-record work cost more in a
 * live round trip than in a tight loop.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';

function spin(us: number): void {
  const end = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
  while (process.hrtime.bigint() < end);
}

async function server(): Promise<void> {
  // Gone with the parent, however it ended: a forgotten echo server would skew the next run.
  process.on('disconnect', () => process.exit(0));
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  let busyUs = 0;
  process.on('message', (m) => {
    busyUs = Number(m);
    process.send!('ok');
  });
  wss.on('connection', (ws) =>
    ws.on('message', (data) => {
      spin(busyUs);
      ws.send(data);
    }),
  );
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  process.send!((wss.address() as { port: number }).port);
}

async function client(rounds: number, busyList: number[]): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--server']);
  const next = () => new Promise<unknown>((resolve) => child.once('message', resolve));
  const port = Number(await next());
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  await new Promise((resolve) => ws.once('open', resolve));
  const payload = 'x'.repeat(1024);
  const roundTrip = () =>
    new Promise<void>((resolve) => {
      ws.once('message', () => resolve());
      ws.send(payload);
    });
  const warmup = Math.max(100, Math.floor(rounds / 5));
  console.log(`Node ${process.version}; plain ws, 1 KB, one message in flight, ${rounds} rounds per busy time (after ${warmup} not counted)`);
  console.log('| server busy per message | round trip p50 | p50 − busy |');
  console.log('| --- | --- | --- |');
  for (const busyUs of busyList) {
    child.send(busyUs);
    await next();
    for (let i = 0; i < warmup; i++) await roundTrip();
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = process.hrtime.bigint();
      await roundTrip();
      samples.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    samples.sort((a, b) => a - b);
    const beyond = samples[samples.length >> 1]! - busyUs;
    console.log(`| ${busyUs} µs | ${(beyond + busyUs).toFixed(1)} µs | ${beyond.toFixed(1)} µs |`);
  }
  ws.close();
  child.kill();
}

const { values } = parseArgs({ options: { server: { type: 'boolean' }, rounds: { type: 'string', default: '2000' }, busy: { type: 'string', default: '0,50,100,150,200,300,400,600' } } });
if (values.server) await server();
else {
  const rounds = Number(values.rounds);
  const busy = values.busy.split(',').map(Number);
  if (!Number.isInteger(rounds) || rounds < 100) throw new RangeError('--rounds expects an integer of at least 100');
  if (busy.some((b) => !Number.isFinite(b) || b < 0)) throw new RangeError('--busy expects a comma-separated list of µs >= 0');
  await client(rounds, busy);
}
