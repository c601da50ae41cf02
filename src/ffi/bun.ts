/**
 * `bun:ffi`, loaded only when running on Bun (the compiled plugins). Node has no FFI without
 * native addons, so every caller has a process-based path for Node and takes this one only when
 * {@link loadBunFfi} gives a module. The types are the subset the project uses, written here so
 * that `tsc` (Node's types only) checks the callers.
 */

/** An argument or return type as bun:ffi names it. */
export type FfiType = "i32" | "u32" | "i64" | "u64" | "ptr" | "cstring" | "void" | "bool";

export interface FfiSymbol {
  readonly args: readonly FfiType[];
  readonly returns: FfiType;
}

/** A native address as bun:ffi gives it (a number; 0 for NULL). */
export type Pointer = number;

/** Symbols of a dlopen'ed library: functions taking numbers, pointers or typed arrays. */
export type FfiFunctions<S extends string> = Record<
  S,
  (...args: Array<number | bigint | boolean | ArrayBufferView | null>) => unknown
>;

export interface BunFfi {
  dlopen<S extends string>(
    path: string,
    symbols: Record<S, FfiSymbol>,
  ): { symbols: FfiFunctions<S>; close(): void };
  /** The address of a typed array's memory (valid while the array is alive). */
  ptr(view: ArrayBufferView, byteOffset?: number): Pointer;
  /** A NUL-terminated string at an address, decoded as UTF-8. */
  CString: new (address: Pointer) => { toString(): string };
  /** Copies nothing: an ArrayBuffer over native memory. */
  toArrayBuffer(address: Pointer, byteOffset: number, byteLength: number): ArrayBuffer;
  read: { i32(address: Pointer, byteOffset?: number): number };
}

/** True when this process runs on Bun. */
export function onBun(): boolean {
  return typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
}

let loaded: Promise<BunFfi | undefined> | undefined;

/** bun:ffi under Bun, undefined elsewhere (or when the import fails). Loaded once per process. */
export function loadBunFfi(): Promise<BunFfi | undefined> {
  loaded ??= onBun()
    ? // A variable, not a literal: Node's type checker and module loader never resolve it.
      import(BUN_FFI).then(
        (m) => m as BunFfi,
        () => undefined,
      )
    : Promise.resolve(undefined);
  return loaded;
}

const BUN_FFI: string = "bun:ffi";

/** A string as a NUL-terminated buffer, for a `ptr` argument. */
export function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}
