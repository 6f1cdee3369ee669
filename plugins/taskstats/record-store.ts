/**
 * A compact store of TaskRecords kept across sweeps (the live poller's cache: one per live
 * process). A TaskRecord object holds its numbers as heap-allocated doubles (16 bytes each plus
 * the object's slot: ~1.5 KB a record); here they are rows of one Float64Array (8 bytes each, no
 * object per record, no garbage when a row is rewritten) and the other fields stay in the
 * caller's entry. The columns are the table's numeric fields (record.ts). docs/deploy.md, "Memory".
 */
import { NUMERIC_FIELDS, compileFromTable, type TaskRecord } from './record.js';

/** Columns of a record in a row: the numeric fields of TaskRecord, in table order. */
export const RECORD_NUMBERS = NUMERIC_FIELDS.length;

/**
 * Rows of `stride` doubles (stride >= RECORD_NUMBERS: the columns after the record's are the
 * caller's). A row's offset stays valid until it is released (the array grows by copying).
 */
export class RecordRows {
  /** The rows; read it again after alloc() (it may have been replaced by a larger one). */
  f: Float64Array;
  private readonly freeRows: number[] = [];
  private next = 0;

  constructor(
    readonly stride: number,
    initialRows = 1024,
  ) {
    if (stride < RECORD_NUMBERS) throw new RangeError(`RecordRows stride ${stride} < ${RECORD_NUMBERS}`);
    this.f = new Float64Array(stride * initialRows);
  }

  /** Offset of a free row (its contents are undefined). */
  alloc(): number {
    const reused = this.freeRows.pop();
    if (reused !== undefined) return reused;
    const o = this.next;
    if (o + this.stride > this.f.length) {
      const grown = new Float64Array(this.f.length * 2);
      grown.set(this.f);
      this.f = grown;
    }
    this.next = o + this.stride;
    return o;
  }

  release(o: number): void {
    this.freeRows.push(o);
  }

  /** Releases every row (and memory beyond the initial size). */
  clear(initialRows = 1024): void {
    this.freeRows.length = 0;
    this.next = 0;
    if (this.f.length > this.stride * initialRows) this.f = new Float64Array(this.stride * initialRows);
  }

  /** Rows in use. */
  get size(): number {
    return this.next / this.stride - this.freeRows.length;
  }
}

/** The numbers of `s` into the row at `o`, one column per field of NUMERIC_FIELDS (made from the table: see compileFromTable). */
export const storeRecordNumbers = compileFromTable(['s', 'f', 'o'], NUMERIC_FIELDS.map((k, i) => `f[o + ${i}] = s.${k};`).join('\n')) as (
  s: TaskRecord,
  f: Float64Array,
  o: number,
) => void;

/** The row at `o` into the numbers of `d` (its other fields are left as they are). */
export const loadRecordNumbers = compileFromTable(['f', 'o', 'd'], NUMERIC_FIELDS.map((k, i) => `d.${k} = f[o + ${i}];`).join('\n')) as (
  f: Float64Array,
  o: number,
  d: TaskRecord,
) => void;
