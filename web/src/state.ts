// Who is signed in, loaded once per page load and after login/logout.
import { api, ApiError, getToken, type Me } from "./api";

export interface Session {
  me: Me | null;
  roles: Set<string>;
  name: string;
}

export const session: Session = { me: null, roles: new Set(), name: "" };

export async function loadSession(): Promise<void> {
  session.me = null;
  session.roles = new Set();
  session.name = "";
  if (!getToken()) return;
  try {
    const me = await api<Me>("/api/me");
    session.me = me;
    session.roles = new Set(me.roles ?? []);
    session.name = typeof me.user === "string" ? me.user : me.user?.name ?? "";
  } catch (e) {
    // A token the server rejects is kept (the login page says so) rather than silently dropped.
    if (!(e instanceof ApiError && e.status === 401)) throw e;
  }
}

export function hasRole(...roles: string[]): boolean {
  if (session.roles.has("admin")) return true;
  return roles.some((r) => session.roles.has(r));
}
