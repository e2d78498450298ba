/*
 * The operator's dashboard: a static page under /dashboard/ that asks for the ManagementToken
 * and reads the management API with it. The files hold no data, so they are served without a
 * token; everything they show comes from the token-guarded JSON endpoints.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const DASHBOARD_PATH = "/dashboard/";

/** The page's files and their types; nothing else under /dashboard/ is served. */
const FILES: Readonly<Record<string, string>> = {
  "index.html": "text/html; charset=utf-8",
  "dashboard.css": "text/css; charset=utf-8",
  "dashboard.js": "text/javascript; charset=utf-8",
  "panels.js": "text/javascript; charset=utf-8",
  "charts.js": "text/javascript; charset=utf-8",
};

/**
 * Only the page's own files, scripts and styles from files (no inline code), data only from
 * this origin, and no framing: a token typed into the page can go nowhere else.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export interface DashboardFile {
  readonly type: string;
  readonly body: Buffer;
}

/** Where the files are beside this module: src/dashboard in a checkout, dist/dashboard built. */
export function defaultDashboardDir(): string {
  return fileURLToPath(new URL("./dashboard/", import.meta.url));
}

/** Reads the page's files; throws naming the first one missing. */
export function loadDashboard(dir: string): ReadonlyMap<string, DashboardFile> {
  const files = new Map<string, DashboardFile>();
  for (const [name, type] of Object.entries(FILES)) {
    files.set(name, { type, body: readFileSync(path.join(dir, name)) });
  }
  return files;
}

/** Headers on every dashboard response. */
export function dashboardHeaders(type: string): Record<string, string> {
  return {
    "Content-Type": type,
    "Content-Security-Policy": DASHBOARD_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
  };
}
