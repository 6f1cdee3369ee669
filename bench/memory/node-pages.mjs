// Which parts of the node executable a running process has resident (docs/deploy.md "Memory"):
// the pages of the binary's file-backed mappings that /proc/PID/pagemap says are present, mapped
// to the ELF sections and symbols (`nm -S`, the official binaries keep .symtab) they hold, grouped.
//   node bench/memory/node-pages.mjs PID [more PIDs...]   (root: pagemap needs CAP_SYS_ADMIN for PFNs, not for the present bit)
// NODE_PAGES_GROUP=ICU (a substring of a part's name): also the 40 largest resident symbols of that part.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, readlinkSync } from 'node:fs';

const PAGE = 4096;

function groupOf(name, section) {
  if (name.startsWith('Builtins_')) return 'V8 embedded builtins (Builtins_*)';
  if (/^v8::internal::compiler::turboshaft/.test(name)) return 'V8 TurboFan/Turboshaft (compiler::)';
  if (/^v8::internal::compiler::/.test(name)) return 'V8 TurboFan/Turboshaft (compiler::)';
  if (/^v8::internal::maglev::/.test(name)) return 'V8 Maglev';
  if (/^v8::internal::(wasm|liftoff)/.test(name)) return 'V8 wasm';
  if (/^v8::internal::interpreter::/.test(name)) return 'V8 interpreter (Ignition)';
  if (/^v8::internal::(Parser|ParserBase|PreParser|Scanner|Scope|AstValueFactory|.*Ast)/.test(name) || /^v8::internal::(Parser|Scanner)/.test(name))
    return 'V8 parser';
  if (
    /^v8::internal::(Heap|Mark|Scavenger|Minor|Concurrent|Sweeper|Marking|heap::|cppgc|Evacuat|PagedSpace|NewSpace|MemoryAllocator|MutablePage|PageMetadata|Large)/.test(
      name,
    ) ||
    /^cppgc::/.test(name)
  )
    return 'V8 GC and heap';
  if (/^v8::internal::(Deserializer|Snapshot|Serializer|Code.*Serializer)/.test(name)) return 'V8 snapshot (de)serializer';
  if (/^v8::internal::/.test(name) || /^v8::/.test(name) || /^v8_inspector/.test(name)) return 'V8 other (runtime, API, objects)';
  if (/icu_\d+|^u_|^ucol_|^ubrk_|^udat_|^unum_|^uloc_|^ures_|^ucnv_|^utrans_|^icudt/.test(name)) return 'ICU';
  if (/^node::builtins::|node::native_module|builtin_source|^node::.*(Source|source)s?_?/.test(name)) return 'node built-in JS sources / code cache';
  if (/^node::/.test(name)) return 'node C++';
  if (/^uv_|^uv__/.test(name)) return 'libuv';
  if (
    /^(SSL|ssl|EVP|evp|ossl|OSSL|CRYPTO|crypto|BN_|bn_|X509|x509|ASN1|asn1|RSA|EC_|ec_|PEM|ERR_|OPENSSL|sha|SHA|AES|aes|ChaCha|chacha|gcm|OBJ_|BIO_|bio_|DH_|DSA|tls|dtls)/.test(
      name,
    )
  )
    return 'OpenSSL';
  if (/^(nghttp2|ngtcp2|nghttp3)/.test(name)) return 'nghttp2/3';
  if (/^(llhttp|ada::|simdutf|simdjson|brotli|Brotli|BrotliDecoder|inflate|deflate|zng|crc32|adler|ZSTD|zstd|cares|ares_|sqlite)/i.test(name))
    return 'other bundled libraries (llhttp, ada, simdutf, zlib, brotli, zstd, c-ares, sqlite)';
  if (/^(std::|__gnu_cxx|__cxa|operator)/.test(name)) return 'C++ standard library';
  return `other (${section})`;
}

function sections(bin) {
  const out = [];
  const r = spawnSync('readelf', ['-SW', bin], { encoding: 'utf8', maxBuffer: 1 << 26 });
  for (const line of r.stdout.split('\n')) {
    const m = /\]\s+(\S+)\s+\S+\s+([0-9a-f]{16})\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(line);
    if (m && BigInt('0x' + m[2]) !== 0n) out.push({ name: m[1], start: Number.parseInt(m[2], 16), end: Number.parseInt(m[2], 16) + Number.parseInt(m[3], 16) });
  }
  return out;
}

function symbols(bin) {
  const r = spawnSync('nm', ['-S', '--defined-only', '-C', '--no-sort', bin], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const syms = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) \S (.*)$/.exec(line);
    if (m) syms.push({ start: Number.parseInt(m[1], 16), size: Number.parseInt(m[2], 16), name: m[3] });
  }
  syms.sort((a, b) => a.start - b.start);
  return syms;
}

function residentPages(pid, bin) {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  const pages = [];
  try {
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \d+\s+(.*)$/.exec(line);
      if (!m || m[5] !== bin) continue;
      const start = Number.parseInt(m[1], 16);
      const n = (Number.parseInt(m[2], 16) - start) / PAGE;
      const buf = Buffer.alloc(n * 8);
      readSync(fd, buf, 0, buf.length, (start / PAGE) * 8);
      for (let i = 0; i < n; i++) if (buf.readBigUInt64LE(i * 8) >> 63n) pages.push({ addr: start + i * PAGE, perms: m[3] });
    }
  } finally {
    closeSync(fd);
  }
  return pages;
}

const pids = process.argv.slice(2).map(Number);
if (!pids.length) {
  console.error('usage: node bench/memory/node-pages.mjs PID...');
  process.exit(2);
}
const bin = readlinkSync(`/proc/${pids[0]}/exe`);
const secs = sections(bin);
const syms = symbols(bin);
for (const pid of pids) {
  const pages = residentPages(pid, bin);
  const groups = new Map();
  const bySection = new Map();
  const bigSymbols = new Map();
  const groupSymbols = new Map();
  const wanted = process.env.NODE_PAGES_GROUP;
  let j = 0;
  for (const p of pages) {
    const sec = secs.find((s) => p.addr < s.end && p.addr + PAGE > s.start)?.name ?? '(headers)';
    bySection.set(sec, (bySection.get(sec) ?? 0) + PAGE);
    // Attribute the page byte by byte range to the symbols covering it (a page may hold many).
    while (j < syms.length && syms[j].start + syms[j].size <= p.addr) j++;
    let covered = 0;
    for (let k = j; k < syms.length && syms[k].start < p.addr + PAGE; k++) {
      const s = syms[k];
      const lo = Math.max(s.start, p.addr);
      const hi = Math.min(s.start + s.size, p.addr + PAGE);
      if (hi <= lo) continue;
      const g = groupOf(s.name, sec);
      groups.set(g, (groups.get(g) ?? 0) + (hi - lo));
      covered += hi - lo;
      if (wanted && g.includes(wanted)) groupSymbols.set(s.name.slice(0, 120), (groupSymbols.get(s.name.slice(0, 120)) ?? 0) + (hi - lo));
      if (s.size > 256 * 1024) bigSymbols.set(s.name.slice(0, 80), (bigSymbols.get(s.name.slice(0, 80)) ?? 0) + (hi - lo));
    }
    if (covered < PAGE) groups.set(`no symbol (${sec})`, (groups.get(`no symbol (${sec})`) ?? 0) + PAGE - Math.min(PAGE, covered));
  }
  const mib = (b) => (b / 1048576).toFixed(2).padStart(6);
  console.log(`pid ${pid}: ${mib(pages.length * PAGE)} MiB of ${bin} resident`);
  console.log('  by section:');
  for (const [k, v] of [...bySection].sort((a, b) => b[1] - a[1])) console.log(`   ${mib(v)}  ${k}`);
  console.log('  by part:');
  for (const [k, v] of [...groups].sort((a, b) => b[1] - a[1])) if (v > 65536) console.log(`   ${mib(v)}  ${k}`);
  console.log('  large objects (> 256 KiB) resident:');
  for (const [k, v] of [...bigSymbols].sort((a, b) => b[1] - a[1])) console.log(`   ${mib(v)}  ${k}`);
  if (wanted) {
    console.log(`  largest resident symbols of "${wanted}":`);
    for (const [k, v] of [...groupSymbols].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`   ${mib(v)}  ${k}`);
  }
}
