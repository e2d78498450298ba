import net from "node:net";
import type { InternalUrlConfig } from "@dispatch-cloud/config";

/** The service's address: where clients reach it (`url`) and where it binds (`listen`). */
export interface ListenChoice {
  /** The InternalURLs key. */
  readonly url: URL;
  /** ListenURL if given, else the same as url. */
  readonly listen: URL;
}

export type ListenResult =
  | { readonly ok: true; readonly choice: ListenChoice }
  | { readonly ok: false; readonly error: string };

export const NOT_ENABLED =
  'configuration does not enable the "arvados-dispatch-cloud" service on this host';

/** host and port to bind for an http(s) URL (default ports as the scheme says). */
export function bindAddress(u: URL): { host: string; port: number } {
  const port = u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  // URL keeps IPv6 literals bracketed; listen wants them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  return { host, port };
}

/** True if this host can listen on the address (then releases it at once). */
export function canBind(u: URL): Promise<boolean> {
  const { host, port } = bindAddress(u);
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function parse(raw: string): URL | null {
  try {
    return new URL(raw);
  } catch {
    return null;
  }
}

/**
 * Chooses the `Services.DispatchCloud.InternalURLs` entry this process serves, as Arvados's
 * service framework does: `ARVADOS_SERVICE_INTERNAL_URL` names one entry; otherwise the first
 * entry (in config order) whose address can be bound on this host. An entry's `ListenURL`, if
 * set, is where it binds instead of the URL itself.
 */
export async function chooseListenUrl(
  internalUrls: Readonly<Record<string, InternalUrlConfig>>,
  serviceInternalUrl: string | undefined,
  bindable: (u: URL) => Promise<boolean> = canBind,
): Promise<ListenResult> {
  const entries: { url: URL; listen: URL }[] = [];
  for (const [key, cfg] of Object.entries(internalUrls)) {
    const url = parse(key);
    if (url === null) continue;
    const listen = cfg.ListenURL !== "" ? parse(cfg.ListenURL) : url;
    if (listen === null) {
      return {
        ok: false,
        error: `Services.DispatchCloud.InternalURLs.${JSON.stringify(key)}.ListenURL: cannot parse ${JSON.stringify(cfg.ListenURL)}`,
      };
    }
    entries.push({ url, listen });
  }
  if (serviceInternalUrl !== undefined && serviceInternalUrl !== "") {
    const wanted = parse(serviceInternalUrl);
    const hit = entries.find((e) => wanted !== null && e.url.href === wanted.href);
    if (hit === undefined) {
      return {
        ok: false,
        error: `${NOT_ENABLED} (ARVADOS_SERVICE_INTERNAL_URL ${JSON.stringify(serviceInternalUrl)} is not among Services.DispatchCloud.InternalURLs)`,
      };
    }
    return { ok: true, choice: hit };
  }
  for (const e of entries) {
    if (e.listen.protocol !== "http:" && e.listen.protocol !== "https:") continue;
    if (await bindable(e.listen)) return { ok: true, choice: e };
  }
  return { ok: false, error: NOT_ENABLED };
}
