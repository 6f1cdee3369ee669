// node:test reporter for scripts/run-tests.mjs: counts tests passed, failed and skipped (with
// the reasons) and writes them as one JSON object. A skipped suite counts once (its tests are
// never enumerated); a suite failing by itself (a hook) counts as a failure.
export default async function* summary(source) {
  const s = { passed: 0, failed: 0, skipped: 0, reasons: {} };
  for await (const ev of source) {
    const d = ev.data;
    if (ev.type === 'test:pass') {
      if (d.skip !== undefined || d.todo !== undefined) {
        s.skipped++;
        const why = typeof d.skip === 'string' ? d.skip : typeof d.todo === 'string' ? `todo: ${d.todo}` : 'skipped';
        s.reasons[why] = (s.reasons[why] ?? 0) + 1;
      } else if (d.details?.type !== 'suite') s.passed++;
    } else if (ev.type === 'test:fail') {
      if (d.details?.type !== 'suite' || d.details?.error?.failureType !== 'subtestsFailed') s.failed++;
    }
  }
  yield JSON.stringify(s);
}
