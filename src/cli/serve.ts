import type { HomePaths } from './home.js';
import type { Logger } from './log.js';
import type { Values } from './main.js';
import { UsageError } from './usage.js';

export async function serveCommand(_values: Values, _arg: unknown, _paths: HomePaths, _log: Logger): Promise<number> {
  throw new UsageError('serve is not available yet');
}
