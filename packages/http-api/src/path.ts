/**
 * httprouter's CleanPath: a single leading slash, no empty, "." or ".." elements, and the
 * trailing slash kept when the input had one.
 */
export function cleanPath(p: string): string {
  if (p === "") return "/";
  const trailing = p.length > 1 && p.endsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  let cleaned = `/${out.join("/")}`;
  if (trailing && cleaned !== "/") cleaned += "/";
  return cleaned;
}
