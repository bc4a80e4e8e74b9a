// The client side of the HTTP API (/work/briefs2/api.md, refined by the server in
// web/API-CHANGES.md). Every call goes through `api()` so the token and the error shape
// are handled in one place.

const TOKEN_KEY = "vht.token";

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}
export function setToken(t: string | null): void {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface CallOpts {
  method?: string;
  body?: unknown;
  /** Raw body (e.g. an uploaded file) with its media type. */
  raw?: { data: Blob | ArrayBuffer | string; type: string };
  /** Return the response text instead of parsing JSON. */
  text?: boolean;
}

export async function api<T>(path: string, opts: CallOpts = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (opts.raw) {
    headers["Content-Type"] = opts.raw.type;
    body = opts.raw.data as BodyInit;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method: opts.method ?? (body ? "POST" : "GET"), headers, body });
  } catch (e) {
    throw new ApiError(0, "network", `Cannot reach the server (${String(e)})`);
  }
  if (!res.ok) {
    let code = `http_${res.status}`;
    let message = res.statusText || `HTTP ${res.status}`;
    try {
      const j = await res.json();
      if (j && j.error) {
        code = j.error.code ?? code;
        message = j.error.message ?? message;
      }
    } catch {
      // Not JSON: keep the status text.
    }
    throw new ApiError(res.status, code, message);
  }
  if (opts.text) return (await res.text()) as T;
  if (res.status === 204) return undefined as T;
  const ct = res.headers.get("content-type") ?? "";
  if (!ct.includes("json")) return (await res.text()) as T;
  return (await res.json()) as T;
}

/** Fetch a binary or text resource with the token, for downloads and inline artifacts. */
export async function fetchBlob(path: string): Promise<Blob> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { headers });
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, res.statusText);
  return res.blob();
}

export async function download(path: string, filename: string): Promise<void> {
  const blob = await fetchBlob(path);
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- Types (only the fields the UI reads; the server may send more) ----

export interface Me {
  user: { id?: string; name: string } | string;
  roles: string[];
  projects: Array<{ id: string; name: string } | string>;
}

export interface ModelSummary {
  id: string;
  name: string;
  description?: string;
  latest_version?: string;
  authors?: Array<string | { name?: string; given?: string; family?: string }>;
  tags?: string[];
  visibility?: string;
}

export interface Page<T> {
  items: T[];
  total: number;
}

export interface Variables {
  species: Array<{ id: string; name?: string; initial?: number | null }>;
  parameters: Array<{ id: string; name?: string; value?: number | null }>;
  compartments: Array<{ id: string; name?: string; size?: number | null }>;
}

export interface SimRequest {
  model: string;
  version: string;
  start: number;
  end: number;
  points: number;
  set: Record<string, number>;
  select?: string[];
}

/** The simulation result in one shape, whichever of the two the server sends. */
export interface Series {
  time: number[];
  series: Record<string, number[]>;
}

export function toSeries(r: unknown): Series {
  const o = r as Record<string, unknown>;
  if (Array.isArray(o.columns) && Array.isArray(o.rows)) {
    const cols = o.columns as string[];
    const rows = o.rows as number[][];
    const ti = Math.max(0, cols.indexOf("time"));
    const series: Record<string, number[]> = {};
    cols.forEach((c, i) => {
      if (i !== ti) series[c] = rows.map((row) => row[i]);
    });
    return { time: rows.map((row) => row[ti]), series };
  }
  if (Array.isArray(o.time) && o.series && typeof o.series === "object") {
    return { time: o.time as number[], series: o.series as Record<string, number[]> };
  }
  throw new ApiError(0, "bad_response", "The simulation result has neither columns/rows nor time/series");
}

export function authorName(a: string | { name?: string; given?: string; family?: string }): string {
  if (typeof a === "string") return a;
  return a.name ?? [a.given, a.family].filter(Boolean).join(" ");
}
