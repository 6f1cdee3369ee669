/**
 * V8 flags the agent sets for itself at start (bin/taskstats-agent calls applyMemoryFlags() before
 * loading the CLI), so that every way of starting it (npm start, the image, tests, benchmarks, a
 * plain `node bin/taskstats-agent`) gets them. See docs/deploy.md, "Memory".
 *
 * --heap-growing-percent=20: V8 lets the old generation grow to up to 4 times what survived the
 * last full collection before the next one. The agent holds little (~17 MB, plus ~2.5 KB per live
 * process) but every collection cycle promotes short-lived garbage (records and samples that live
 * across a sweep), so its RSS climbed 30-60 MB above what it held. A 20% factor keeps the old
 * generation near its live size (V8 still grows it by at least 8 MB per step, so a small heap is
 * collected about every 8 MB of promotions). It is not a limit: a heap that must grow still does,
 * so there is no out-of-memory risk, unlike --max-old-space-size. V8 reads it at every full
 * collection, which is why setting it at run time works (unlike the young generation's size,
 * fixed when the isolate is created: such flags are on node's command line, from bin/node-flags).
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

/** The flags of bin/node-flags: one a line, `#` comments and blank lines ignored. */
export function parseNodeFlags(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * The flags node must get on its command line (bin/node-flags: bin/taskstats-agent passes them,
 * the image's ENTRYPOINT carries them), for tests and benchmarks that start node themselves.
 */
export function nodeCommandLineFlags(): string[] {
  return parseNodeFlags(readFileSync(new URL('../../bin/node-flags', import.meta.url), 'utf8'));
}

export const MEMORY_V8_FLAGS: readonly string[] = ['--heap-growing-percent=20'];

/** The flag's name without dashes/underscores differences: `heap_growing_percent`. */
function flagName(flag: string): string {
  return flag.replace(/^--/, '').split('=')[0]!.replace(/-/g, '_');
}

/**
 * The memory flags still to set: those that neither node's command line (`execArgv`) nor
 * NODE_OPTIONS already sets (the user's choice wins, e.g. `--heap-growing-percent=0` for V8's own
 * dynamic factor).
 */
export function memoryFlagsToSet(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].filter((a) => a.startsWith('--')).map(flagName));
  return MEMORY_V8_FLAGS.filter((f) => !given.has(flagName(f)));
}

/** Sets the memory flags not given on the command line; returns those it set. */
export function applyMemoryFlags(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): string[] {
  const flags = memoryFlagsToSet(execArgv, nodeOptions);
  for (const f of flags) setFlagsFromString(f);
  return flags;
}
