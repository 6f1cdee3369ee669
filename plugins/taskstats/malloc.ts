/**
 * glibc malloc settings for the agent's process, applied by the receiver because it is the
 * component that loads native code (koffi); the host loads none. docs/deploy.md, "Memory".
 *
 * Why: node's 12 threads (V8's compiler and GC helpers, libuv's pool, the exec watcher) each get
 * a malloc arena of their own, and what they free (V8 compilation zones, Buffers of an export)
 * stays resident as fragmentation: with 5,000 processes the main arena held ~16 MB and six thread
 * arenas 1-5 MB each, ~30 MB of RSS for ~12 MB in use. One arena, a fixed mmap threshold (large
 * blocks are mapped and unmapped, not kept; glibc otherwise raises the threshold up to 32 MB
 * after the first large free) and a malloc_trim(0) per collection cycle (which returns the free
 * pages inside every arena, not only the top) keep it near what is in use.
 *
 * The environment variables glibc reads (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_,
 * MALLOC_TRIM_THRESHOLD_) win when set: their value is applied here, which also makes them work
 * where glibc ignores them (a binary with file capabilities, as in the image, runs AT_SECURE).
 */
import { mallocCalls } from './libc.js';
import type { Logger } from '../../src/api/index.js';

/** mallopt() parameters (malloc.h). */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
const M_ARENA_MAX = -8;

/** What is set by default, and the environment variable that overrides each. */
export const MALLOC_SETTINGS = [
  { param: M_ARENA_MAX, name: 'arena_max', env: 'MALLOC_ARENA_MAX', value: 1 },
  { param: M_MMAP_THRESHOLD, name: 'mmap_threshold', env: 'MALLOC_MMAP_THRESHOLD_', value: 128 * 1024 },
  { param: M_TRIM_THRESHOLD, name: 'trim_threshold', env: 'MALLOC_TRIM_THRESHOLD_', value: 128 * 1024 },
] as const;

export interface MallocTuning {
  /** The settings applied (name to value). */
  readonly applied: Record<string, number>;
  /** Returns free memory of every arena to the kernel; returns how long it took, seconds. */
  trim(): number;
}

/**
 * Applies the settings. Returns why not where glibc's malloc is not there (musl, or another
 * allocator preloaded: mallopt is then absent or refuses).
 */
export function tuneMalloc(env: NodeJS.ProcessEnv = process.env): MallocTuning | { reason: string } {
  let mallopt: (param: number, value: number) => number;
  let mallocTrim: (pad: number) => number;
  try {
    ({ mallopt, mallocTrim } = mallocCalls());
  } catch (err) {
    return { reason: `glibc malloc not found (${(err as Error).message})` };
  }
  const applied: Record<string, number> = {};
  for (const s of MALLOC_SETTINGS) {
    const given = env[s.env];
    const value = given !== undefined && /^\d+$/.test(given.trim()) ? Number(given) : s.value;
    if (mallopt(s.param, value) !== 1) return { reason: `mallopt(${s.name}, ${value}) refused` };
    applied[s.name] = value;
  }
  return {
    applied,
    trim() {
      const t0 = process.hrtime.bigint();
      mallocTrim(0);
      return Number(process.hrtime.bigint() - t0) / 1e9;
    },
  };
}

let processTuning: MallocTuning | { reason: string } | undefined;

/** tuneMalloc() once per process (every receiver shares it), said once in the log. */
export function processMallocTuning(logger: Logger): MallocTuning | null {
  if (processTuning === undefined) {
    processTuning = tuneMalloc();
    if ('reason' in processTuning) logger.warn(`malloc settings not applied: ${processTuning.reason}; RSS may be ~10-15 MB higher`, { key: 'malloc' });
    else logger.debug('malloc settings applied', processTuning.applied);
  }
  return 'reason' in processTuning ? null : processTuning;
}
