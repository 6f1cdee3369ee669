/**
 * The context the host gives a component, for tests that create one directly: it records what the
 * component reports (counters, gauges, warnings and errors) instead of exporting it. Spread it into
 * a receiver's context with the consumers the test needs: `{ ...recordingContext('taskstats'), next }`.
 */
import type { Attributes, ComponentContext } from '../../src/api/index.js';

export interface RecordingContext extends ComponentContext {
  /**
   * Each counter's total by name; a value added with attributes is counted under its name and
   * again under the name followed by the attributes' JSON (`exit_events_suppressed{"outcome":"success"}`).
   */
  readonly counters: Map<string, number>;
  /** The read function of each gauge by name (the last registered of a name). */
  readonly gauges: Map<string, () => number>;
  /** The messages of `logger.warn` and `logger.error`, in order. */
  readonly warnings: string[];
}

export function recordingContext(id: string): RecordingContext {
  const counters = new Map<string, number>();
  const gauges = new Map<string, () => number>();
  const warnings: string[] = [];
  const count = (key: string, v: number) => counters.set(key, (counters.get(key) ?? 0) + v);
  return {
    id,
    counters,
    gauges,
    warnings,
    logger: { debug() {}, info() {}, warn: (msg) => void warnings.push(msg), error: (msg) => void warnings.push(msg) },
    telemetry: {
      dropped() {},
      counter: (name) => ({
        add: (v: number, attributes?: Attributes) => {
          count(name, v);
          if (attributes) count(`${name}${JSON.stringify(attributes)}`, v);
        },
      }),
      gauge: (name, _description, read) => void gauges.set(name, read),
    },
  };
}
