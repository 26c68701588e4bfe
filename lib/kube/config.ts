/**
 * Where the Kubernetes API is and how to authenticate to it: from a kubeconfig file (its current context), or
 * from the pod's service account (in-cluster). Only what a node agent needs is supported: a server URL, a CA (file
 * or data) or insecure-skip-tls-verify, a bearer token (or token file), a client certificate and key (files or
 * data). Users that need another program (`exec`, `auth-provider`) are refused with a KubeConfigError: this runs
 * as root on every node, and starting a program named in a file is not something it should do.
 *
 * @example
 *   const target = loadKubeconfig(readFileSync("/etc/kubernetes/kubelet.conf", "utf8"), "/etc/kubernetes/kubelet.conf");
 *   const target = inCluster(process.env); // in a pod
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { parseYamlSubset, YamlSubsetError } from "./yaml.js";

/** A kubeconfig or service account that cannot be used: the message says what to fix. */
export class KubeConfigError extends Error {
  override name = "KubeConfigError";
}

/** Everything a request to the API server needs. Files are read by the caller of `readCredentials`. */
export interface KubeTarget {
  /** https://host:port or http://host:port, no path. */
  server: URL;
  /** PEM of the CA that signed the server's certificate; absent: the system's CAs. */
  ca?: Buffer;
  insecureSkipTLSVerify?: boolean;
  /** A fixed bearer token. */
  token?: string;
  /** A token file, re-read for every request (bound service-account tokens are rotated by the kubelet). */
  tokenFile?: string;
  cert?: Buffer;
  key?: Buffer;
  /** Where the settings came from, for messages. */
  source: string;
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined;

function named(list: unknown, name: string, what: string, source: string): Obj {
  const entry = Array.isArray(list) ? list.map(obj).find((e) => e?.name === name) : undefined;
  const inner = obj(entry?.[what]);
  if (!inner) throw new KubeConfigError(`${source}: no ${what} named ${JSON.stringify(name)}`);
  return inner;
}

function str(o: Obj, key: string, source: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new KubeConfigError(`${source}: ${key} is not a string`);
  return v;
}

/** A server URL we can talk to: http(s), a host, no credentials or query in it. */
export function parseServer(text: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new KubeConfigError(`${source}: server ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new KubeConfigError(`${source}: server ${JSON.stringify(text)} is not http(s)`);
  if (url.username || url.password || url.search || url.hash)
    throw new KubeConfigError(`${source}: server ${JSON.stringify(text)} carries credentials, a query or a fragment`);
  if (url.pathname !== "/" && url.pathname !== "")
    throw new KubeConfigError(
      `${source}: server ${JSON.stringify(text)} has a path; an API server behind a path prefix is not supported`,
    );
  return url;
}

/**
 * The current context of a kubeconfig (YAML in kubeconfig's subset, or JSON). `path` is where it was read
 * from: relative file names in it (certificate-authority, client-key, tokenFile) are relative to its directory,
 * as kubectl reads them. Files named in it are read here.
 */
export function loadKubeconfig(text: string, path: string, context?: string): KubeTarget {
  let doc: unknown;
  try {
    doc = text.trimStart().startsWith("{") ? (JSON.parse(text) as unknown) : parseYamlSubset(text);
  } catch (e) {
    if (e instanceof YamlSubsetError || e instanceof SyntaxError) throw new KubeConfigError(`${path}: ${e.message}`);
    throw e;
  }
  const root = obj(doc);
  if (!root) throw new KubeConfigError(`${path} is not a kubeconfig (not a mapping)`);
  if (root.kind !== undefined && root.kind !== "Config")
    throw new KubeConfigError(`${path} is a ${JSON.stringify(root.kind)}, not a kubeconfig (kind: Config)`);
  const ctxName = context ?? (typeof root["current-context"] === "string" ? (root["current-context"] as string) : "");
  if (ctxName === "") throw new KubeConfigError(`${path} has no current-context`);
  const ctx = named(root.contexts, ctxName, "context", path);
  const clusterName = typeof ctx.cluster === "string" ? ctx.cluster : "";
  const userName = typeof ctx.user === "string" ? ctx.user : "";
  const cluster = named(root.clusters, clusterName, "cluster", path);
  const user = userName === "" ? {} : named(root.users, userName, "user", path);
  const file = (f: string) => {
    const p = isAbsolute(f) ? f : join(dirname(path), f);
    try {
      return readFileSync(p);
    } catch (e) {
      throw new KubeConfigError(
        `${path}: cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  };
  const data = (o: Obj, dataKey: string, fileKey: string): Buffer | undefined => {
    const d = str(o, dataKey, path);
    if (d !== undefined) return Buffer.from(d, "base64");
    const f = str(o, fileKey, path);
    return f === undefined ? undefined : file(f);
  };
  if (user.exec !== undefined || user["auth-provider"] !== undefined) {
    throw new KubeConfigError(
      `${path}: user ${JSON.stringify(userName)} authenticates through another program (exec / auth-provider), which this does not run; use a token, a token file or a client certificate`,
    );
  }
  if (user.username !== undefined || user.password !== undefined)
    throw new KubeConfigError(`${path}: basic authentication (username/password) is not supported`);
  const server = str(cluster, "server", path);
  if (server === undefined) throw new KubeConfigError(`${path}: cluster ${JSON.stringify(clusterName)} has no server`);
  const target: KubeTarget = { server: parseServer(server, path), source: path };
  const ca = data(cluster, "certificate-authority-data", "certificate-authority");
  if (ca) target.ca = ca;
  if (cluster["insecure-skip-tls-verify"] === true) target.insecureSkipTLSVerify = true;
  const token = str(user, "token", path);
  if (token !== undefined) target.token = token;
  const tokenFile = str(user, "tokenFile", path);
  if (tokenFile !== undefined && token === undefined)
    target.tokenFile = isAbsolute(tokenFile) ? tokenFile : join(dirname(path), tokenFile);
  const cert = data(user, "client-certificate-data", "client-certificate");
  const key = data(user, "client-key-data", "client-key");
  if ((cert === undefined) !== (key === undefined))
    throw new KubeConfigError(
      `${path}: user ${JSON.stringify(userName)} has a client certificate without key, or a key without certificate`,
    );
  if (cert && key) {
    target.cert = cert;
    target.key = key;
  }
  return target;
}

/** The pod's service account: KUBERNETES_SERVICE_HOST/PORT, the token file (re-read per request) and ca.crt. */
export function inCluster(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): KubeTarget {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  if (!host) throw new KubeConfigError("not in a cluster (KUBERNETES_SERVICE_HOST is unset): give --kubeconfig FILE");
  if (!/^\d{1,5}$/.test(port))
    throw new KubeConfigError(`KUBERNETES_SERVICE_PORT ${JSON.stringify(port)} is not a port number`);
  const source = `the service account in ${dir}`;
  let ca: Buffer;
  try {
    ca = readFileSync(join(dir, "ca.crt"));
  } catch (e) {
    throw new KubeConfigError(
      `cannot read ${join(dir, "ca.crt")}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return {
    server: parseServer(`https://${host.includes(":") ? `[${host}]` : host}:${port}`, "KUBERNETES_SERVICE_HOST"),
    ca,
    tokenFile: join(dir, "token"),
    source,
  };
}

/** The bearer token to send now, if any (a token file is read each time: the kubelet rotates it). */
export function currentToken(t: KubeTarget): string | undefined {
  if (t.token !== undefined) return t.token;
  if (t.tokenFile === undefined) return undefined;
  try {
    return readFileSync(t.tokenFile, "utf8").trim();
  } catch (e) {
    throw new KubeConfigError(
      `cannot read the token ${t.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/** The target of a command: `kubeconfig` when given, else the pod's service account. KubeConfigError when unusable. */
export function resolveTarget(kubeconfig: string | undefined, env: NodeJS.ProcessEnv): KubeTarget {
  if (kubeconfig === undefined) return inCluster(env);
  let text: string;
  try {
    text = readFileSync(kubeconfig, "utf8");
  } catch (e) {
    throw new KubeConfigError(
      `cannot read ${kubeconfig}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return loadKubeconfig(text, kubeconfig);
}
