/**
 * Per-step memo of kernel reads: a step's checks (and its differential snapshot) read each namespace's links,
 * routes and nat rules once, so every check of the step sees the same state and no read is repeated.
 */
import { links, natText, routes, type KLink, type KRoute } from "./kernel.js";

export class KernelCache {
  private readonly l = new Map<string, Promise<KLink[]>>();
  private readonly r = new Map<string, Promise<KRoute[]>>();
  private readonly n = new Map<string, Promise<string>>();
  /** Links of namespace `ns` (by name). */
  links(ns: string): Promise<KLink[]> {
    if (!this.l.has(ns)) this.l.set(ns, links(ns));
    return this.l.get(ns)!;
  }
  /** Routes of namespace `ns` (by name). */
  routes(ns: string): Promise<KRoute[]> {
    if (!this.r.has(ns)) this.r.set(ns, routes(ns));
    return this.r.get(ns)!;
  }
  /** The nat table / ruleset text of the namespace at `path`. */
  nat(path: string): Promise<string> {
    if (!this.n.has(path)) this.n.set(path, natText(path));
    return this.n.get(path)!;
  }
}
