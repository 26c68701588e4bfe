/**
 * `ipam.resolvConf`: a resolv.conf turned into the result's `dns` (nameserver, domain, search, options; `#` and `;`
 * start comments), as the reference does.
 *
 * @example parseResolvConf("nameserver 10.0.0.10\nsearch svc.cluster.local\n") // {nameservers: ["10.0.0.10"], search: [...]}
 */
import { readFileSync } from "node:fs";
import { CniError, ErrorCode } from "../../lib/errors.js";
import type { DNS } from "../../lib/types.js";

export function parseResolvConf(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const [key, ...rest] = line.split(/\s+/);
    if (rest.length === 0) continue;
    switch (key) {
      case "nameserver":
        (dns.nameservers ??= []).push(rest[0]!);
        break;
      case "domain":
        dns.domain = rest[0]!;
        break;
      case "search":
        (dns.search ??= []).push(...rest);
        break;
      case "options":
        (dns.options ??= []).push(...rest);
        break;
    }
  }
  return dns;
}

export function loadResolvConf(path: string): DNS {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `cannot read ipam.resolvConf ${JSON.stringify(path)}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return parseResolvConf(text);
}
