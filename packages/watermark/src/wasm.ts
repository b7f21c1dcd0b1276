/**
 * A tiny assembler for the WebAssembly (SIMD) modules the packages embed as bytes: the project has no
 * WebAssembly toolchain, and the modules are a few dozen instructions each.
 */

/** Unsigned LEB128. */
export function leb(value: number): number[] {
  const bytes: number[] = [];
  let v = value >>> 0;
  do {
    const low = v & 127;
    v >>>= 7;
    bytes.push(v === 0 ? low : low | 128);
  } while (v !== 0);
  return bytes;
}

/** Signed LEB128 (the immediate of i32.const and i64.const): a number is taken as a 32-bit integer. */
export function sleb(value: number | bigint): number[] {
  const bytes: number[] = [];
  let v = typeof value === 'bigint' ? BigInt.asIntN(64, value) : BigInt(value | 0);
  for (;;) {
    const low = Number(v & 127n);
    v >>= 7n;
    if ((v === 0n && (low & 64) === 0) || (v === -1n && (low & 64) !== 0)) return [...bytes, low];
    bytes.push(low | 128);
  }
}

export const u32 = (v: number): number[] => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255];
/** v128.const with four i32 lanes. */
export const lanes = (...values: number[]): number[] => [0xfd, 0x0c, ...values.flatMap(u32)];
export const splat = (v: number): number[] => lanes(v, v, v, v);
export const get = (i: number): number[] => [0x20, ...leb(i)];
export const set = (i: number): number[] => [0x21, ...leb(i)];
export const tee = (i: number): number[] => [0x22, ...leb(i)];
export const i32 = (v: number): number[] => [0x41, ...sleb(v)];
export const i64 = (v: bigint): number[] => [0x42, ...sleb(v)];
/** v128.load / v128.store at a constant byte offset (alignment hint 1). */
export const load = (offset: number): number[] => [0xfd, 0x00, 0x00, ...leb(offset)];
export const store = (offset: number): number[] => [0xfd, 0x0b, 0x00, ...leb(offset)];
/** i32.load at a constant byte offset (alignment hint 4). */
export const loadI32 = (offset: number): number[] => [0x28, 0x02, ...leb(offset)];
export const simd = {
  and: [0xfd, 0x4e],
  or: [0xfd, 0x50],
  xor: [0xfd, 0x51],
  shl: [0xfd, 0xab, 0x01],
  shrS: [0xfd, 0xac, 0x01],
  shrU: [0xfd, 0xad, 0x01],
  add: [0xfd, 0xae, 0x01],
  sub: [0xfd, 0xb1, 0x01],
  mul: [0xfd, 0xb5, 0x01],
  splat: [0xfd, 0x11],
};

export const section = (id: number, bytes: number[]): number[] => [id, ...leb(bytes.length), ...bytes];
export const name = (text: string): number[] => [text.length, ...Array.from(text, (c) => c.charCodeAt(0))];
/** The module header: magic and version 1. */
export const MODULE_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** The parts of the WebAssembly API used here (the package's typings do not assume a runtime). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

/** The exports of a module instance, or undefined where the runtime lacks WebAssembly (or its SIMD). */
export function wasmExports(bytes: Uint8Array): Record<string, unknown> | undefined {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined) return undefined;
  try {
    return new wasm.Instance(new wasm.Module(bytes), {}).exports;
  } catch {
    return undefined;
  }
}
