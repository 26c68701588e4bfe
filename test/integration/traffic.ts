/**
 * Real traffic for integration tests: a python3 listener (TCP and UDP on one dual-stack port) in a pod namespace,
 * and a one-shot client in any namespace. Every answer names the protocol and the address the pod saw, so a test
 * can tell a masqueraded connection from a direct one.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import type { Ns } from "./bridge-lab.js";

export type Proto = "tcp" | "udp";

/** The port the listener binds in the pod. */
export const POD_PORT = 80;

// TCP and UDP on one dual-stack port; every answer names the protocol and the address the pod saw.
const SERVER = String.raw`
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
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
if proto == "tcp":
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5)  # a first SYN lost to neighbour discovery is resent after 1 s
    s.connect((host, port)); s.sendall(b"hello\n")
    print(s.makefile().readline().strip())
else:
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(0.5)
    for _ in range(3):
        s.sendto(b"hello\n", (host, port))
        try:
            print(s.recvfrom(2048)[0].decode().strip()); break
        except socket.timeout:
            pass
    else:
        sys.exit(1)
`;

const servers: ChildProcess[] = [];

/** Kill every listener still running (afterAll). */
export function stopAll(): void {
  for (const s of servers.splice(0)) s.kill("SIGKILL");
}

/** Start the listener in a pod; resolves once it is bound. */
export function serve(pod: Ns): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", pod.name, "python3", "-u", "-c", SERVER, String(POD_PORT)], { stdio: ["ignore", "pipe", "pipe"] });
    servers.push(child);
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout.once("data", () => resolve(child));
    child.once("exit", (code) => reject(new Error(`listener in ${pod.name} exited (${code}): ${err}`)));
  });
}

export function stop(child: ChildProcess): void {
  child.kill("SIGKILL");
  servers.splice(servers.indexOf(child), 1);
}

/** One request from namespace `ns` to host:port; the pod's answer ("hello tcp from 1.2.3.4"), or undefined. */
export function talk(ns: Ns, host: string, port: number, proto: Proto): string | undefined {
  const r = spawnSync("ip", ["netns", "exec", ns.name, "python3", "-c", CLIENT, host, String(port), proto], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export const answer = (proto: Proto, from: string) => `hello ${proto} from ${from}`;
