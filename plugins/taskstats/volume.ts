/**
 * Volume control of exit events: two per-second budgets (failures, successes) and the count of
 * what they held back, per workload (command, cgroup), reported downstream as one
 * `process.exit.suppressed` record per workload each summary interval, in self-telemetry
 * (`exit_events_suppressed`) and in the agent's log.
 *
 * At 14,000 exits/s (two fork loops) an event per exit is a flood no backend wants, while the
 * failures are what people look for: so failures have their own budget, which a flood of
 * successes cannot use up.
 *
 * The budget is a fixed one-second window per class: exact ("at most N a second"), one compare
 * and one increment per exit. The suppressed counts are a two-level Map (cgroup, command) of
 * small objects, bounded by `maxWorkloads`; beyond it, one shared "other workloads" entry.
 */
import { ATTR, SeverityNumber, type Attributes, type LogRecord } from '../../src/api/index.js';
import { EVENT_ATTR, EVENT_NAME } from './exit-events.js';

export interface ExitBudgetOptions {
  /** Failures kept per second; Infinity for every one. */
  failuresPerSecond: number;
  /** Successes kept per second; Infinity for every one. */
  successesPerSecond: number;
  /** Workloads counted apart per summary interval. */
  maxWorkloads: number;
}

interface Held {
  successes: number;
  failures: number;
}

export interface BudgetTotals {
  keptSuccesses: number;
  keptFailures: number;
  suppressedSuccesses: number;
  suppressedFailures: number;
}

export class ExitBudget {
  private readonly failuresPerSecond: number;
  private readonly successesPerSecond: number;
  private readonly maxWorkloads: number;
  private windowSec = -1;
  private failuresInWindow = 0;
  private successesInWindow = 0;
  /** cgroup -> command -> held back in the current summary interval. */
  private held = new Map<string, Map<string, Held>>();
  private workloads = 0;
  /** Held back for workloads beyond maxWorkloads (their names are not kept). */
  private other: Held = { successes: 0, failures: 0 };
  /** Since start, for self-telemetry and tests. */
  readonly totals: BudgetTotals = { keptSuccesses: 0, keptFailures: 0, suppressedSuccesses: 0, suppressedFailures: 0 };
  /** Held back since the last summary (for the log line). */
  private heldSuccesses = 0;
  private heldFailures = 0;

  constructor(o: ExitBudgetOptions) {
    this.failuresPerSecond = o.failuresPerSecond;
    this.successesPerSecond = o.successesPerSecond;
    this.maxWorkloads = o.maxWorkloads;
  }

  /** Is this exit kept? When not, it is counted for its workload. */
  admit(failure: boolean, nowMs: number, command: string, cgroup: string): boolean {
    const sec = Math.floor(nowMs / 1000);
    if (sec !== this.windowSec) {
      this.windowSec = sec;
      this.failuresInWindow = 0;
      this.successesInWindow = 0;
    }
    if (failure) {
      if (this.failuresInWindow < this.failuresPerSecond) {
        this.failuresInWindow++;
        this.totals.keptFailures++;
        return true;
      }
    } else if (this.successesInWindow < this.successesPerSecond) {
      this.successesInWindow++;
      this.totals.keptSuccesses++;
      return true;
    }
    const h = this.heldFor(command, cgroup);
    if (failure) {
      h.failures++;
      this.totals.suppressedFailures++;
      this.heldFailures++;
    } else {
      h.successes++;
      this.totals.suppressedSuccesses++;
      this.heldSuccesses++;
    }
    return false;
  }

  /** Held back since the last summary: successes, failures, workloads. */
  pending(): { successes: number; failures: number; workloads: number } {
    return { successes: this.heldSuccesses, failures: this.heldFailures, workloads: this.workloads };
  }

  /**
   * One `process.exit.suppressed` record per workload with exits held back since the last call
   * (plus one for the workloads beyond maxWorkloads), and a fresh interval.
   */
  summarize(nowMs: number, intervalS: number): LogRecord[] {
    const out: LogRecord[] = [];
    const perSecond = `budget ${describeBudget(this.successesPerSecond)} successes/s, ${describeBudget(this.failuresPerSecond)} failures/s`;
    for (const [cgroup, byCommand] of this.held) {
      for (const [command, h] of byCommand) {
        out.push(
          this.record(
            nowMs,
            intervalS,
            h,
            { [ATTR.EXECUTABLE_NAME]: command, [ATTR.CGROUP]: cgroup },
            `${command} in ${cgroup === '' ? 'no known cgroup' : cgroup}`,
            perSecond,
          ),
        );
      }
    }
    if (this.other.successes + this.other.failures > 0) {
      const what = `workloads beyond the first ${this.maxWorkloads}`;
      out.push(this.record(nowMs, intervalS, this.other, { [EVENT_ATTR.OTHER_WORKLOADS]: true }, what, perSecond));
    }
    this.held = new Map();
    this.workloads = 0;
    this.other = { successes: 0, failures: 0 };
    this.heldSuccesses = 0;
    this.heldFailures = 0;
    return out;
  }

  private record(nowMs: number, intervalS: number, h: Held, who: Attributes, what: string, budget: string): LogRecord {
    const severity = h.failures > 0 ? SeverityNumber.WARN : SeverityNumber.INFO;
    return {
      timeMs: nowMs,
      severityNumber: severity,
      severityText: h.failures > 0 ? 'WARN' : 'INFO',
      eventName: EVENT_NAME.SUPPRESSED,
      body: `${h.successes + h.failures} exit events of ${what} held back over the last ${intervalS} s (${h.successes} successes, ${h.failures} failures; ${budget})`,
      attributes: {
        ...who,
        [EVENT_ATTR.SUPPRESSED_SUCCESSES]: h.successes,
        [EVENT_ATTR.SUPPRESSED_FAILURES]: h.failures,
        [EVENT_ATTR.SUPPRESSED_INTERVAL]: intervalS,
      },
    };
  }

  private heldFor(command: string, cgroup: string): Held {
    let byCommand = this.held.get(cgroup);
    let h = byCommand?.get(command);
    if (h !== undefined) return h;
    if (this.workloads >= this.maxWorkloads) return this.other;
    if (byCommand === undefined) {
      byCommand = new Map();
      this.held.set(cgroup, byCommand);
    }
    h = { successes: 0, failures: 0 };
    byCommand.set(command, h);
    this.workloads++;
    return h;
  }
}

function describeBudget(n: number): string {
  return n === Infinity ? 'unlimited' : String(n);
}
