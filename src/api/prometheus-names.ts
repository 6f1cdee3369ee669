/**
 * Metric names for Prometheus as the OpenTelemetry-to-Prometheus compatibility rules write them
 * (unit suffix, then `_total` on monotonic sums by whoever serializes): one rule for the agent's
 * own /metrics endpoint and the prometheus exporter.
 */

/** UCUM units and their Prometheus words (OpenTelemetry-to-Prometheus compatibility, "Metric metadata"). */
const UNIT_WORDS: Record<string, string> = {
  d: 'days',
  h: 'hours',
  min: 'minutes',
  s: 'seconds',
  ms: 'milliseconds',
  us: 'microseconds',
  ns: 'nanoseconds',
  By: 'bytes',
  KiBy: 'kibibytes',
  MiBy: 'mebibytes',
  GiBy: 'gibibytes',
  TiBy: 'tebibytes',
  KBy: 'kilobytes',
  MBy: 'megabytes',
  GBy: 'gigabytes',
  TBy: 'terabytes',
  m: 'meters',
  V: 'volts',
  A: 'amperes',
  J: 'joules',
  W: 'watts',
  g: 'grams',
  Cel: 'celsius',
  Hz: 'hertz',
  '%': 'percent',
};
const PER_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

/**
 * The unit part of a Prometheus name: `s` -> `seconds`, `By/s` -> `bytes_per_second`; annotations
 * (`{process}`) and units outside the table (products such as `MiBy.s`) give none; a gauge in `1`
 * gives `ratio`.
 */
export function prometheusUnit(unit: string, gauge: boolean): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (u === '1') return gauge ? 'ratio' : '';
  const [main = '', per, ...rest] = u.split('/');
  if (rest.length > 0) return '';
  const mainWord = main === '' || main === '1' ? '' : UNIT_WORDS[main];
  if (mainWord === undefined) return '';
  if (per === undefined) return mainWord;
  const perWord = PER_WORDS[per] ?? UNIT_WORDS[per];
  if (perWord === undefined) return '';
  return mainWord === '' ? `per_${perWord}` : `${mainWord}_per_${perWord}`;
}

/**
 * The metric name with its unit suffix unless it already ends with it (the serializer then turns
 * dots into underscores and adds `_total` to monotonic sums).
 */
export function prometheusMetricName(name: string, unit: string, gauge: boolean): string {
  const suffix = prometheusUnit(unit, gauge);
  if (suffix === '') return name;
  const flat = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return flat.endsWith(`_${suffix}`) || flat.endsWith(`_${suffix}_total`) ? name : `${name}_${suffix}`;
}
