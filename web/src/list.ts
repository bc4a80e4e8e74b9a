// List endpoints answer either a bare array or `{items, total}`; the UI accepts both.
export function items<T>(r: unknown): T[] {
  if (Array.isArray(r)) return r as T[];
  if (r && typeof r === "object") {
    const o = r as Record<string, unknown>;
    for (const k of ["items", "runs", "twins", "permits", "entries", "datasets"]) {
      if (Array.isArray(o[k])) return o[k] as T[];
    }
  }
  return [];
}
