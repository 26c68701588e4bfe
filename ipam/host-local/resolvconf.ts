/**
 * `ipam.resolvConf`: a resolv.conf turned into the result's `dns` (nameserver, domain, search, options; `#` and `;`
 * start comments), as the reference does.
 *
 * @example parseResolvConf("nameserver 10.0.0.10\nsearch svc.cluster.local\n") // {nameservers: ["10.0.0.10"], search: [...]}
 */
import { NotRegularFileError, readRegular } from "./files.js";
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
        dns.nameservers ??= [];
        dns.nameservers.push(rest[0]!);
        break;
      case "domain":
        dns.domain = rest[0]!;
        break;
      case "search":
        dns.search ??= [];
        dns.search.push(...rest);
        break;
      case "options":
        dns.options ??= [];
        dns.options.push(...rest);
        break;
    }
  }
  return dns;
}

const MAX_RESOLV_CONF_BYTES = 64 * 1024;

/** A regular file of at most 64 KiB: a FIFO would hang ADD, /dev/zero would eat memory (code 7 for both). */
export function loadResolvConf(path: string): DNS {
  let text: string;
  try {
    // Checked on the open descriptor (O_NONBLOCK, fstat), not by a stat of the name before: a FIFO swapped in between
    // would hang the read. Links are followed: /etc/resolv.conf is often one.
    text = readRegular(path, { follow: true, maxBytes: MAX_RESOLV_CONF_BYTES }).text;
  } catch (e) {
    if (e instanceof NotRegularFileError)
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `ipam.resolvConf ${JSON.stringify(path)} is not a regular file`,
        e.message,
      );
    if (e instanceof RangeError)
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `ipam.resolvConf ${JSON.stringify(path)} is larger than ${MAX_RESOLV_CONF_BYTES} bytes`,
      );
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `cannot read ipam.resolvConf ${JSON.stringify(path)}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
  return parseResolvConf(text);
}
