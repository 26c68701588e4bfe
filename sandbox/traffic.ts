/**
 * Real traffic between the run's namespaces: ping, and a python3 listener (TCP and UDP on one dual-stack port) with
 * a one-shot client. Every answer carries the token the client sent, the protocol, and the address the listener saw
 * ("TOKEN tcp from 10.0.0.5"), so an answer from anything but this listener (another process on the port, a stale
 * forward) does not count, and a test can tell a masqueraded connection from a direct one.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { SYSTEM_PATH } from "./exec.js";

export type Proto = "tcp" | "udp";

/** Where nsenter lives; the readers and the listener enter a namespace with it by path. */
export const NSENTER = "/usr/bin/nsenter";

/** argv of one echo request to `to` with a 1 s deadline, numeric output. */
export function pingArgv(to: string): string[] {
  return ["ping", to.includes(":") ? "-6" : "-4", "-n", "-c1", "-W1", to];
}

/** The round-trip time in a ping's output, or undefined. */
export function parseRtt(out: string): number | undefined {
  const m = /time[=<]([\d.]+)\s*ms/.exec(out);
  return m ? Number(m[1]) : undefined;
}

export interface PingResult {
  ok: boolean;
  rttMs?: number;
  output: string;
}

/** One echo request from namespace `nsName` and its answer within a second. */
export function pingOnce(nsName: string, to: string): PingResult {
  const r = spawnSync("ip", ["netns", "exec", nsName, ...pingArgv(to)], { encoding: "utf8", timeout: 10_000 });
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
  const rtt = r.status === 0 ? parseRtt(r.stdout ?? "") : undefined;
  return { ok: r.status === 0, ...(rtt === undefined ? {} : { rttMs: rtt }), output };
}

// TCP and UDP on one dual-stack port; every answer is the line received, the protocol and the peer's address.
const LISTENER = String.raw`
import socket, sys, threading
port = int(sys.argv[1])
def peer(a):
    return a[0][7:] if a[0].startswith("::ffff:") else a[0]
def tcp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(64)
    while True:
        c, a = s.accept()
        try:
            c.settimeout(3)
            line = c.makefile().readline().strip()
            c.sendall(("%s tcp from %s\n" % (line, peer(a))).encode())
        except Exception:
            pass
        finally:
            c.close()
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        d, a = s.recvfrom(2048)
        s.sendto(("%s udp from %s\n" % (d.decode().strip(), peer(a))).encode(), a)
threading.Thread(target=tcp, daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
`;

const CLIENT = String.raw`
import socket, sys
host, port, proto, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
if proto == "tcp":
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5)  # a first SYN lost to neighbour discovery is resent after 1 s
    s.connect((host, port)); s.sendall((token + "\n").encode())
    print(s.makefile().readline().strip())
else:
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(0.5)
    for _ in range(3):
        s.sendto((token + "\n").encode(), (host, port))
        try:
            print(s.recvfrom(2048)[0].decode().strip()); break
        except socket.timeout:
            pass
    else:
        sys.exit(1)
`;

/** argv of the one-shot client: sends `token` to host:port over `proto`, prints the answer, exits 1 without one. */
export function clientArgv(host: string, port: number, proto: Proto, token: string): string[] {
  return ["python3", "-c", CLIENT, host, String(port), proto, token];
}

// Listeners still running when the process exits (a failed test, Ctrl-C) are killed.
const listeners = new Set<ChildProcess>();
let exitHook = false;

/** Start the listener on `port` in the namespace at `nsPath`; resolves once it is bound (at most 10 s). */
export function startListener(nsPath: string, port: number): Promise<ChildProcess> {
  const child = spawn(NSENTER, [`--net=${nsPath}`, "--", "python3", "-u", "-c", LISTENER, String(port)], {
    env: { PATH: SYSTEM_PATH },
    stdio: ["ignore", "pipe", "pipe"],
  });
  listeners.add(child);
  if (!exitHook) {
    exitHook = true;
    process.on("exit", stopAllListeners);
  }
  return new Promise((resolve, reject) => {
    let err = "";
    const t = setTimeout(
      () => reject(new Error(`listener on port ${port} in ${nsPath} not ready after 10 s: ${err}`)),
      10_000,
    );
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout!.once("data", () => {
      clearTimeout(t);
      resolve(child);
    });
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`listener on port ${port} in ${nsPath} exited (${code}): ${err.trim()}`));
    });
  });
}

export function stopListener(child: ChildProcess): void {
  child.kill("SIGKILL");
  listeners.delete(child);
}

/** Kill every listener still running. */
export function stopAllListeners(): void {
  for (const l of [...listeners]) stopListener(l);
}
