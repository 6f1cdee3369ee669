/**
 * node:http without undici. node:http's WebSocket, CloseEvent and MessageEvent exports are lazy
 * getters that load undici (node's fetch, and with it http2, zlib, web streams). An ES module
 * import of a built-in builds its namespace once, reading every export: so the first
 * `import ... from 'node:http'` (the OpenTelemetry HTTP exporters do one, a dynamic import of "http",
 * even in their CommonJS builds) loads undici, ~3 MiB of RSS in the agent with 5,000 processes
 * (bench/memory/probe.mjs; docs/deploy.md "Memory"). The agent uses none of the three.
 *
 * So bin/taskstats-agent builds that namespace first, with the three taken off node:http for the
 * moment (a namespace export whose property is absent is undefined, and no getter runs), then puts
 * them back: `require('node:http').WebSocket` and `globalThis.WebSocket` still work; only
 * `import { WebSocket } from 'node:http'` is undefined in the agent.
 */
const UNDICI_EXPORTS = ['WebSocket', 'CloseEvent', 'MessageEvent'] as const;

export async function importHttpWithoutUndici(): Promise<void> {
  const http = process.getBuiltinModule('node:http') as unknown as Record<string, unknown>;
  const taken: Array<[string, PropertyDescriptor]> = [];
  for (const name of UNDICI_EXPORTS) {
    const d = Object.getOwnPropertyDescriptor(http, name);
    if (d?.configurable && d.get) {
      taken.push([name, d]);
      Reflect.deleteProperty(http, name);
    }
  }
  try {
    await import('node:http');
  } finally {
    for (const [name, d] of taken) Object.defineProperty(http, name, d);
  }
}
