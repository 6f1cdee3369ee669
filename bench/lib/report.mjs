// How a benchmark reports: human lines, plus one machine-readable BENCH_RESULT line per figure
// (bench/run.mjs collects them into the summary and .cache/bench/last-run.json).

/**
 * @param {{name: string, value: number, unit?: string, target?: string, limit?: string,
 *          pass?: boolean, detail?: string, [k: string]: unknown}} r
 */
export function result(r) {
  console.log(`BENCH_RESULT ${JSON.stringify(r)}`);
}

export function log(...args) {
  console.log(...args);
}

/** Mean of numbers. */
export const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Median of numbers. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
