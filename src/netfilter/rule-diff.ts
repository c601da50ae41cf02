/**
 * The changes that turn the rules of a chain in the kernel into the wanted ones: rules kept in
 * order (a longest common subsequence by key), the rest deleted, new rules inserted before the
 * next kept rule or appended. One changed rule among 10,000 costs one delete and one insert.
 */

export interface KernelRule {
  /** The marker key from the rule's comment; undefined for a rule the manager did not write. */
  key: string | undefined;
  /** The kernel's handle, when known (rules added since the last listing have none yet). */
  handle: number | undefined;
}

export interface RuleDiff {
  /** Indices of kernel rules to delete. */
  deletes: number[];
  /** Wanted rules to insert, in order, each before a kept kernel rule or (undefined) at the end. */
  inserts: Array<{ want: number; before: number | undefined }>;
  /** For each wanted rule, the kernel rule it is (or -1 for an insert). */
  kept: number[];
}

export function diffRules(kernel: readonly KernelRule[], want: readonly string[]): RuleDiff {
  const positions = new Map<string, number[]>();
  kernel.forEach((r, i) => {
    if (r.key === undefined) return;
    const list = positions.get(r.key);
    if (list) list.push(i);
    else positions.set(r.key, [i]);
  });
  // The k-th wanted rule with a key is the k-th kernel rule with it; the rules kept are the
  // longest run of those in increasing kernel order (for unique keys, the longest common
  // subsequence), found in n log n.
  const seen = new Map<string, number>();
  const candidate = want.map((key) => {
    const list = positions.get(key);
    const k = seen.get(key) ?? 0;
    seen.set(key, k + 1);
    return list && k < list.length ? list[k]! : -1;
  });
  const tails: number[] = []; // tails[l]: index j ending the best increasing run of length l+1
  const prev = new Array<number>(want.length).fill(-1);
  for (let j = 0; j < want.length; j++) {
    const c = candidate[j]!;
    if (c < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (candidate[tails[mid]!]! < c) lo = mid + 1;
      else hi = mid;
    }
    prev[j] = lo > 0 ? tails[lo - 1]! : -1;
    tails[lo] = j;
  }
  const kept: number[] = new Array<number>(want.length).fill(-1);
  const used = new Uint8Array(kernel.length);
  for (let j = tails.length ? tails[tails.length - 1]! : -1; j >= 0; j = prev[j]!) {
    kept[j] = candidate[j]!;
    used[candidate[j]!] = 1;
  }
  const deletes: number[] = [];
  for (let i = 0; i < kernel.length; i++) if (!used[i]) deletes.push(i);
  const inserts: RuleDiff["inserts"] = [];
  let next: number | undefined;
  const before: Array<number | undefined> = new Array<number | undefined>(want.length);
  for (let j = want.length - 1; j >= 0; j--) {
    if (kept[j]! >= 0) next = kept[j];
    else before[j] = next;
  }
  for (let j = 0; j < want.length; j++) if (kept[j]! < 0) inserts.push({ want: j, before: before[j] });
  return { deletes, inserts, kept };
}

/** Kernel rules whose handles the diff needs. */
export function handlesNeeded(diff: RuleDiff): number[] {
  const out = new Set(diff.deletes);
  for (const i of diff.inserts) if (i.before !== undefined) out.add(i.before);
  return [...out];
}
