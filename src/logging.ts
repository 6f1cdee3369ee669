/**
 * Logging: pino, JSON lines on stderr (console lines when stderr is a terminal, or as configured).
 * The loggers handed to components rate-limit identical warnings and errors: the first is printed,
 * then at most one per interval per message key, carrying how many were suppressed meanwhile.
 */
import { writeSync } from 'node:fs';
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';
import type { Logger } from './api/index.js';
import type { LogEncoding, LogLevel } from './config/load.js';

export type { PinoLogger };

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Formats pino's JSON line as one readable line: `time LEVEL msg key=value ...`. */
/** A pino JSON line: time (epoch ms, or text with a custom timestamp), numeric or named level, message, fields. */
interface PinoRecord {
  time?: number | string;
  level?: number | string;
  msg?: string;
  [field: string]: unknown;
}

export function consoleLine(json: string): string {
  let rec: PinoRecord;
  try {
    rec = JSON.parse(json) as PinoRecord;
  } catch {
    return json;
  }
  const { time, level, msg, ...rest } = rec;
  const lvl = typeof level === 'string' ? level.toUpperCase() : (LEVEL_NAMES[level as number] ?? String(level));
  let line = `${String(time ?? '')} ${lvl.padEnd(5)} ${msg ?? ''}`;
  for (const [k, v] of Object.entries(rest)) {
    if (k === 'pid' || k === 'hostname') continue;
    if (k === 'err' && v && typeof v === 'object') {
      const e = v as { type?: string; message?: string; stack?: string };
      line += ` err="${e.type ?? 'Error'}: ${e.message ?? ''}"`;
      continue;
    }
    line += ` ${k}=${typeof v === 'string' && !/\s|"/.test(v) ? v : JSON.stringify(v)}`;
  }
  return line + '\n';
}

export interface RootLoggerOptions {
  level: LogLevel;
  /** Default: console when stderr is a terminal, else json. */
  encoding?: LogEncoding;
  /** Where lines go (default: file descriptor 2, written synchronously so nothing is lost at exit). */
  write?: (line: string) => void;
}

export function createRootLogger(opts: RootLoggerOptions): PinoLogger {
  const encoding = opts.encoding ?? (process.stderr.isTTY ? 'console' : 'json');
  const write =
    opts.write ??
    ((line: string) => {
      try {
        writeSync(2, line);
      } catch {
        // stderr closed: nowhere left to report
      }
    });
  const stream = { write: encoding === 'console' ? (s: string) => write(consoleLine(s)) : write };
  return pino(
    {
      level: opts.level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}

/** Decides which repeated warnings and errors are printed. */
export class LogRateLimiter {
  private readonly entries = new Map<string, { nextAllowedMs: number; suppressed: number }>();
  constructor(
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 10_000,
  ) {}

  /** Returns -1 to suppress, otherwise the number suppressed since the last printed one. */
  admit(key: string, nowMs = Date.now()): number {
    const e = this.entries.get(key);
    if (!e) {
      if (this.entries.size >= this.maxKeys) this.entries.clear();
      this.entries.set(key, { nextAllowedMs: nowMs + this.intervalMs, suppressed: 0 });
      return 0;
    }
    if (nowMs < e.nextAllowedMs) {
      e.suppressed++;
      return -1;
    }
    const n = e.suppressed;
    e.suppressed = 0;
    e.nextAllowedMs = nowMs + this.intervalMs;
    return n;
  }

  /** Keys with suppressed messages not yet reported (and resets them). */
  drainSuppressed(): Array<{ key: string; suppressed: number }> {
    const out: Array<{ key: string; suppressed: number }> = [];
    for (const [key, e] of this.entries)
      if (e.suppressed > 0) {
        out.push({ key, suppressed: e.suppressed });
        e.suppressed = 0;
      }
    return out;
  }
}

/**
 * The Logger of the plugin API over a pino child logger. warn and error are rate-limited per
 * (level, `fields.key` or message).
 */
export class ComponentLogger implements Logger {
  constructor(
    private readonly pinoLogger: PinoLogger,
    private readonly limiter: LogRateLimiter,
    private readonly scope: string,
  ) {}

  debug(msg: string, fields?: Record<string, unknown>): void {
    if (fields) this.pinoLogger.debug(fields, msg);
    else this.pinoLogger.debug(msg);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    if (fields) this.pinoLogger.info(fields, msg);
    else this.pinoLogger.info(msg);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    if (!this.pinoLogger.isLevelEnabled('warn')) return;
    const n = this.limiter.admit(`${this.scope}\0warn\0${(fields?.key as string | undefined) ?? msg}`);
    if (n < 0) return;
    this.pinoLogger.warn(n > 0 ? { ...fields, suppressed: n } : (fields ?? {}), msg);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    if (!this.pinoLogger.isLevelEnabled('error')) return;
    const n = this.limiter.admit(`${this.scope}\0error\0${(fields?.key as string | undefined) ?? msg}`);
    if (n < 0) return;
    this.pinoLogger.error(n > 0 ? { ...fields, suppressed: n } : (fields ?? {}), msg);
  }
}

/** Reports messages that were suppressed and never followed by a printed one (at shutdown). */
export function reportSuppressed(root: PinoLogger, limiter: LogRateLimiter): void {
  for (const { key, suppressed } of limiter.drainSuppressed()) {
    const [scope, level, msgKey] = key.split('\0');
    root.info({ component: scope || undefined, level_of_suppressed: level, key: msgKey, suppressed }, 'repeated messages were suppressed');
  }
}
