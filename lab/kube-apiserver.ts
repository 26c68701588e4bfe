/**
 * A stand-in for kube-apiserver that speaks the Node list/watch protocol faithfully enough to test a client
 * against it: GET /api/v1/nodes (paged with limit/continue, a resourceVersion per list), GET
 * /api/v1/nodes/NAME, and watches (?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N) as a
 * chunked stream of ADDED/MODIFIED/DELETED/BOOKMARK events, one JSON object per line. Like the real server it
 * keeps a window of recent events: a watch from a resourceVersion older than the window gets an ERROR event
 * with a 410 Expired Status, and the client must list again. Bearer-token authentication (401 without it), or,
 * over TLS (`tls`), a client certificate signed by the given CA.
 *
 * Faults on demand, for tests: drop every watch connection, answer slowly, write a malformed event line, answer
 * a watch with HTTP 410, go away entirely (stop) and come back (start). Used by the integration tests and by
 * `npm run demo -- --watch`; it serves on a socket created inside a namespace (netns-listen.ts).
 *
 * @example
 *   const api = new FakeApiServer({ token: "t" });
 *   await api.start(() => listenInNetns(ns, "172.31.250.250", 6443));
 *   api.upsert(nodeObject("node4", "10.244.4.0/24", "172.31.250.14")); // ADDED to every watch
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { TLSSocket } from "node:tls";
import type { Server as NetServer, Socket } from "node:net";

type Obj = Record<string, unknown>;

export interface WatchRequest {
  resourceVersion: string | undefined;
  bookmarks: boolean;
  timeoutSeconds: number | undefined;
}

/** A Node object as the API returns it (the fields routing reads, and a few it does not). */
export function nodeObject(name: string, podCIDRs: string[], internalIPs: string[], extra: { status?: Obj } = {}): Obj {
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: { name, uid: `uid-${name}`, labels: { "kubernetes.io/hostname": name } },
    spec: { podCIDR: podCIDRs[0], podCIDRs },
    status: {
      addresses: [
        ...internalIPs.map((address) => ({ type: "InternalIP", address })),
        { type: "Hostname", address: name },
      ],
      conditions: [{ type: "Ready", status: "True" }],
      ...extra.status,
    },
  };
}

export class FakeApiServer {
  private rv = 100;
  private readonly nodes = new Map<string, Obj>();
  /** Events kept for watches that resume: [rv, type, object]. */
  private history: Array<{ rv: number; type: string; object: Obj }> = [];
  private oldest = 100;
  private readonly watches = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private http: HttpServer | undefined;
  /** Every request's method and URL, in order (tests look at what the client asked for). */
  readonly requests: string[] = [];
  readonly watchRequests: WatchRequest[] = [];
  /** Fault switches. */
  faults = { slowMs: 0, slowCount: 0, malformedNextWatch: false, gone410Count: 0, listStatus: 0 };
  bookmarkMs: number;

  /**
   * `tls`: serve HTTPS with this key and certificate; with `clientCa`, a client certificate signed by it is asked
   * for, and a request that presents one needs no token.
   */
  constructor(
    private readonly o: {
      token?: string;
      bookmarkMs?: number;
      pageSize?: number;
      tls?: { key: Buffer; cert: Buffer; clientCa?: Buffer };
    } = {},
  ) {
    this.bookmarkMs = o.bookmarkMs ?? 1000;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Serve on a socket handle (made by `listen`, e.g. inside a namespace). */
  async start(listen: () => Promise<{ handle: NetServer }>): Promise<void> {
    const { handle } = await listen();
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const tls = this.o.tls;
    const server: HttpServer = tls
      ? (createTlsServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
          },
          handler,
        ) as unknown as HttpServer)
      : createServer(handler);
    server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(handle, resolve));
    this.http = server;
  }

  /** Go away: the socket closes and every connection is cut (clients see refused connections from now on). */
  async stop(): Promise<void> {
    const s = this.http;
    this.http = undefined;
    for (const w of this.watches) w.destroy();
    this.watches.clear();
    for (const sock of this.sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Create or replace a Node: ADDED or MODIFIED to every watch. */
  upsert(node: Obj): void {
    const name = String((node.metadata as Obj).name);
    const type = this.nodes.has(name) ? "MODIFIED" : "ADDED";
    this.record(type, node);
  }

  delete(name: string): void {
    const node = this.nodes.get(name);
    if (node) this.record("DELETED", node);
  }

  /** Forget the event window (as etcd compaction does): a watch from an older resourceVersion gets 410. */
  compact(): void {
    this.history = [];
    this.oldest = this.rv;
  }

  /** Cut every watch connection mid-stream (no end chunk). */
  dropWatches(): void {
    for (const w of this.watches) w.socket?.destroy();
    this.watches.clear();
  }

  private record(type: string, node: Obj): void {
    this.rv++;
    const meta = node.metadata as Obj;
    const object = { ...node, metadata: { ...meta, resourceVersion: String(this.rv) } };
    const name = String(meta.name);
    if (type === "DELETED") this.nodes.delete(name);
    else this.nodes.set(name, object);
    this.history.push({ rv: this.rv, type, object });
    for (const w of this.watches) this.send(w, type, object);
  }

  private send(res: ServerResponse, type: string, object: Obj): void {
    res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(
      JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code }),
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests.push(`${req.method} ${req.url}`);
    const byCertificate = (req.socket as Partial<TLSSocket>).authorized === true;
    if (this.o.token !== undefined && !byCertificate && req.headers.authorization !== `Bearer ${this.o.token}`)
      return this.status(res, 401, "Unauthorized", "Unauthorized");
    if (this.faults.slowCount > 0) {
      this.faults.slowCount--;
      await new Promise((r) => setTimeout(r, this.faults.slowMs));
      if (res.destroyed) return;
    }
    const url = new URL(req.url ?? "/", "http://x");
    const q = url.searchParams;
    if (req.method !== "GET") return this.status(res, 405, "MethodNotAllowed", "GET only");
    if (url.pathname.startsWith("/api/v1/nodes/")) {
      const node = this.nodes.get(decodeURIComponent(url.pathname.slice("/api/v1/nodes/".length)));
      if (!node) return this.status(res, 404, "NotFound", `nodes "${url.pathname.slice(14)}" not found`);
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify(node));
    }
    if (url.pathname !== "/api/v1/nodes")
      return this.status(res, 404, "NotFound", "the server could not find the requested resource");
    if (q.get("watch") === "1" || q.get("watch") === "true") return this.watch(req, res, q);
    if (this.faults.listStatus) {
      const code = this.faults.listStatus;
      this.faults.listStatus = 0;
      return this.status(res, code, "InternalError", "the list is not available");
    }
    // A list: a consistent snapshot, paged. The continue token names the snapshot's rv and the offset.
    const limit = Number(q.get("limit") ?? 0) || this.o.pageSize || 0;
    const pageSize = Math.min(limit || Infinity, this.o.pageSize ?? Infinity);
    let rv = this.rv;
    let offset = 0;
    const cont = q.get("continue");
    if (cont) {
      const m = /^(\d+):(\d+)$/.exec(Buffer.from(cont, "base64").toString());
      if (!m) return this.status(res, 400, "BadRequest", "invalid continue token");
      rv = Number(m[1]);
      offset = Number(m[2]);
      if (rv < this.oldest) return this.status(res, 410, "Expired", "the continue token has expired");
    }
    const all = [...this.nodes.values()].sort((a, b) =>
      String((a.metadata as Obj).name).localeCompare(String((b.metadata as Obj).name)),
    );
    const items = Number.isFinite(pageSize) ? all.slice(offset, offset + pageSize) : all.slice(offset);
    const next =
      offset + items.length < all.length ? Buffer.from(`${rv}:${offset + items.length}`).toString("base64") : undefined;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        kind: "NodeList",
        apiVersion: "v1",
        metadata: { resourceVersion: String(rv), ...(next ? { continue: next } : {}) },
        items,
      }),
    );
  }

  private watch(_req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
    const rvText = q.get("resourceVersion") ?? undefined;
    const timeout = q.get("timeoutSeconds");
    this.watchRequests.push({
      resourceVersion: rvText,
      bookmarks: q.get("allowWatchBookmarks") === "true",
      timeoutSeconds: timeout ? Number(timeout) : undefined,
    });
    if (this.faults.gone410Count > 0) {
      this.faults.gone410Count--;
      this.status(res, 410, "Gone", "the resource version is gone");
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    if (this.faults.malformedNextWatch) {
      this.faults.malformedNextWatch = false;
      res.write('{"type":"ADDED","object":{"kind":"Node" THIS IS NOT JSON\n');
    }
    const from = rvText === undefined || rvText === "" || rvText === "0" ? undefined : Number(rvText);
    if (from !== undefined && (!Number.isInteger(from) || from < this.oldest)) {
      // What kube-apiserver does for a resourceVersion out of its window: 200, one ERROR event, end.
      this.send(res, "ERROR", {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: `too old resource version: ${rvText} (${this.oldest})`,
        reason: "Expired",
        code: 410,
      });
      return void res.end();
    }
    if (from === undefined) {
      for (const n of this.nodes.values()) this.send(res, "ADDED", n);
    } else {
      for (const e of this.history) if (e.rv > from) this.send(res, e.type, e.object);
    }
    this.watches.add(res);
    const bookmarks =
      q.get("allowWatchBookmarks") === "true"
        ? setInterval(
            () =>
              this.send(res, "BOOKMARK", {
                kind: "Node",
                apiVersion: "v1",
                metadata: { resourceVersion: String(this.rv), annotations: { "k8s.io/initial-events-end": "true" } },
              }),
            this.bookmarkMs,
          )
        : undefined;
    const end = timeout ? setTimeout(() => res.end(), Number(timeout) * 1000) : undefined;
    res.on("close", () => {
      clearInterval(bookmarks);
      clearTimeout(end);
      this.watches.delete(res);
    });
  }
}
