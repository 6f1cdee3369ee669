// A real VictoriaMetrics on loopback for the benchmarks (test/support/victoriametrics.ts, which
// fetches it with scripts/fetch-victoriametrics.sh when missing), receiving the agent's OTLP/HTTP
// protobuf, queried through its export API.
import { startVictoriaMetrics as start } from '../../dist/test/support/victoriametrics.js';

export async function startVictoriaMetrics() {
  const vm = await start();
  return {
    base: vm.url,
    otlpMetricsUrl: vm.otlpMetricsUrl,
    /**
     * Sum over series of each series' newest value (cumulative counters: the total), for series
     * matching `selector`, e.g. '{__name__="process.exits","process.linux.cgroup"="/x"}'.
     */
    async sumOfLast(selector) {
      await vm.flush();
      let total = 0;
      const all = await vm.exportSeries(selector);
      for (const s of all) {
        let last = 0;
        for (let i = 1; i < s.timestamps.length; i++) if (s.timestamps[i] >= s.timestamps[last]) last = i;
        total += s.values[last];
      }
      return { total, series: all.length };
    },
    stop: () => vm.stop(),
    vm,
  };
}
