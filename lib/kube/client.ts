/**
 * A small Kubernetes API client over node:http / node:https: GET a JSON document, or follow a watch stream.
 * Hand-written rather than the official client (@kubernetes/client-node): it is two requests' worth of
 * protocol, and the official one brings ~100 packages into an executable that every pod start loads (see
 * docs/routes.md, "The client"). The TLS modules are loaded on first use, never by a plugin call.
 *
 * @example
 *   const c = new KubeClient(loadKubeconfig(text, path));
 *   const node = await c.getJson("/api/v1/nodes/node1", { timeoutMs: 10_000 });
 *   await c.watch("/api/v1/nodes?watch=1&resourceVersion=42", { idleMs: 60_000, signal, onEvent: (ev) => ... });
 */
import type { ClientRequest, IncomingMessage, RequestOptions } from "node:http";
import { CNI_TS_VERSION } from "../skel.js";
import { currentToken, type KubeTarget } from "./config.js";
import { ProtocolError, WatchDecoder, type WatchEvent } from "./watchstream.js";

/** The API server answered with an error status (a Kubernetes Status object when it sent one). */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** No answer in time, a refused or dropped connection, a TLS failure. */
export class TransportError extends Error {
  override name = "TransportError";
}

export interface GetOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface WatchOptions {
  /** The watch is dropped when nothing (no event, no bookmark) arrives for this long. */
  idleMs: number;
  /** Time for the server to start answering. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** The server accepted the watch (200): called before the first event. */
  onOpen?(): void;
  onEvent(ev: WatchEvent): void;
}

const MAX_BODY = 64 * 1024 * 1024;

/** The message of a Kubernetes Status body, or the start of whatever the body is. */
function statusMessage(status: number, body: string): ApiError {
  let reason = "";
  let message = body.slice(0, 200).trim();
  try {
    const s = JSON.parse(body) as { kind?: string; reason?: string; message?: string };
    if (s.kind === "Status") {
      reason = s.reason ?? "";
      message = s.message ?? message;
    }
  } catch {
    // Not a Status (a proxy's HTML page, say): the text itself is the best message.
  }
  return new ApiError(status, reason, `HTTP ${status}${reason ? ` ${reason}` : ""}: ${message || "(no body)"}`);
}

export class KubeClient {
  constructor(readonly target: KubeTarget) {}

  /** Open a GET and resolve with the response once its headers are in. */
  private async open(
    path: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<{ req: ClientRequest; res: IncomingMessage }> {
    const t = this.target;
    const tls = t.server.protocol === "https:";
    // Loaded here, on first use: TLS costs a Node process ~16 ms of CPU at start, and a plugin call never needs it.
    const mod = tls ? await import("node:https") : await import("node:http");
    const headers: Record<string, string> = { accept: "application/json", "user-agent": `cni-ts/${CNI_TS_VERSION}` };
    const token = currentToken(t);
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const opts: RequestOptions & Record<string, unknown> = {
      method: "GET",
      hostname: t.server.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: t.server.port || (tls ? 443 : 80),
      path,
      headers,
      // One connection per request: a watch holds its own, and a dead keep-alive socket must not be reused.
      agent: false,
    };
    if (tls) {
      if (t.ca) opts.ca = t.ca;
      if (t.cert) opts.cert = t.cert;
      if (t.key) opts.key = t.key;
      opts.rejectUnauthorized = t.insecureSkipTLSVerify !== true;
    }
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new TransportError("aborted"));
      const req = mod.request(opts, (res) => {
        clearTimeout(timer);
        resolve({ req, res });
      });
      const timer = setTimeout(
        () => req.destroy(new TransportError(`no answer from ${t.server.host} within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      const onAbort = () => req.destroy(new TransportError("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("close", () => signal?.removeEventListener("abort", onAbort));
      req.on("error", (e) => {
        clearTimeout(timer);
        reject(
          e instanceof TransportError
            ? e
            : new TransportError(`${t.server.host}: ${(e as NodeJS.ErrnoException).code ?? ""} ${e.message}`.trim()),
        );
      });
      req.end();
    });
  }

  private static body(res: IncomingMessage, limit = MAX_BODY): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (b: Buffer) => {
        size += b.length;
        if (size > limit) res.destroy(new ProtocolError(`an answer longer than ${limit} bytes`));
        else chunks.push(b);
      });
      res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      res.on("error", (e) =>
        reject(
          e instanceof ProtocolError || e instanceof TransportError
            ? e
            : new TransportError(`the answer broke off: ${e.message}`),
        ),
      );
      res.on("aborted", () => reject(new TransportError("the answer broke off")));
    });
  }

  /** GET a JSON document. ApiError for a status other than 200, ProtocolError when the body is not JSON. */
  async getJson(path: string, o: GetOptions): Promise<unknown> {
    const { req, res } = await this.open(path, o.timeoutMs, o.signal);
    // The whole answer within the timeout, not only its headers: a server that trickles a list is as stuck as one
    // that says nothing.
    const timer = setTimeout(
      () =>
        req.destroy(
          new TransportError(`the answer from ${this.target.server.host} took longer than ${o.timeoutMs / 1000} s`),
        ),
      o.timeoutMs,
    );
    try {
      const text = await KubeClient.body(res);
      if (res.statusCode !== 200) throw statusMessage(res.statusCode ?? 0, text);
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new ProtocolError(
          `GET ${path.split("?")[0]}: the answer is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Follow a watch until the server ends it (resolves), or until an error, silence for idleMs, or the signal
   * (rejects). Events are handed over in order as they arrive; an exception from onEvent ends the watch with it.
   */
  async watch(path: string, o: WatchOptions): Promise<void> {
    const { req, res } = await this.open(path, o.timeoutMs, o.signal);
    if (res.statusCode !== 200) throw statusMessage(res.statusCode ?? 0, await KubeClient.body(res, 1024 * 1024));
    o.onOpen?.();
    const decoder = new WatchDecoder();
    res.setEncoding("utf8");
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (e?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(idle);
        if (e) {
          req.destroy();
          reject(e);
        } else resolve();
      };
      let idle = setTimeout(() => undefined, 0);
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => finish(new TransportError(`the watch was silent for ${o.idleMs / 1000} s`)), o.idleMs);
      };
      arm();
      const deliver = (events: WatchEvent[]) => {
        for (const ev of events) o.onEvent(ev);
      };
      res.on("data", (chunk: string) => {
        if (done) return;
        arm();
        try {
          deliver(decoder.push(chunk));
        } catch (e) {
          finish(e as Error);
        }
      });
      res.on("end", () => {
        try {
          deliver(decoder.end());
          finish();
        } catch (e) {
          finish(e as Error);
        }
      });
      res.on("aborted", () => finish(new TransportError("the watch connection broke off")));
      res.on("error", (e) =>
        finish(e instanceof TransportError ? e : new TransportError(`the watch connection broke off: ${e.message}`)),
      );
      req.on("error", (e) => finish(e instanceof TransportError ? e : new TransportError(e.message)));
      req.on("close", () => {
        // A socket closed before the end of the chunked body is a dropped connection, not the server's end.
        if (!res.complete) finish(new TransportError("the watch connection broke off"));
      });
    });
  }
}
