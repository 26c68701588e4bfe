// The import rules of docs/architecture.md, checked on the sources: every .ts file under lib/, plugins/, ipam/ and
// cmd/ is read, its imports resolved to files, and the graph checked. Type-only imports count: they tie the modules
// together as much as any other (a circle of types is a circle a reader has to follow).
//   1. No circle of imports among the modules of lib/, plugins/ and ipam/.
//   2. A plugin (plugins/X, ipam/X) imports no module of another plugin: plugins share code through lib/ only, and
//      run each other through lib/invoke, never by import.
//   3. lib/ imports nothing of ours outside lib/ (no plugin, cmd/, test/, conformance/, lab/, bench/, sandbox/).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const ROOMS = ["lib", "plugins", "ipam", "cmd"];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir)).sort()) {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

/**
 * Comments that begin a line out (an import named in a doc comment is no import); code and strings kept, so a
 * "/*" inside a string (a glob) cannot hide the imports after it.
 */
function stripComments(src: string): string {
  return src.replace(/^[ \t]*\/\*[\s\S]*?\*\//gm, "").replace(/^\s*\/\/.*$/gm, "");
}

/**
 * The module specifiers a file imports: static imports and re-exports (also type-only, also over several lines),
 * side-effect imports, and dynamic `import("...")`, also in type positions.
 */
function importsOf(src: string): string[] {
  const code = stripComments(src);
  const specs = new Set<string>();
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) specs.add(m[1]!);
  return [...specs];
}

interface Graph {
  files: string[];
  /** file -> the files of ours it imports (repository-relative paths). */
  edges: Map<string, string[]>;
  /** Relative imports that name no file: the test would miss them, so they fail it. */
  unresolved: string[];
}

function buildGraph(): Graph {
  const files = ROOMS.flatMap(tsFiles);
  const edges = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const file of files) {
    const targets: string[] = [];
    for (const spec of importsOf(readFileSync(join(root, file), "utf8"))) {
      if (!spec.startsWith(".")) continue; // node: built-ins and packages
      const target = relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, ".ts");
      try {
        statSync(join(root, target));
        targets.push(target);
      } catch {
        unresolved.push(`${file}: ${spec}`);
      }
    }
    edges.set(file, targets);
  }
  return { files, edges, unresolved };
}

const room = (file: string): string => file.split("/")[0]!;
/** plugins/bridge/add.ts -> plugins/bridge; ipam/host-local/store.ts -> ipam/host-local; others undefined. */
const pluginOf = (file: string) =>
  room(file) === "plugins" || room(file) === "ipam" ? file.split("/").slice(0, 2).join("/") : undefined;

/** Each elementary circle found by a depth-first search, once, written from its smallest file. */
function circles(g: Graph, inScope: (f: string) => boolean): string[] {
  const found = new Set<string>();
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, "open");
    stack.push(f);
    for (const t of g.edges.get(f) ?? []) {
      if (!inScope(t)) continue;
      if (state.get(t) === "open") {
        const cycle = stack.slice(stack.indexOf(t));
        const start = cycle.indexOf([...cycle].sort()[0]!);
        const rotated = [...cycle.slice(start), ...cycle.slice(0, start)];
        found.add(`circle: ${[...rotated, rotated[0]].join(" -> ")}`);
      } else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of g.files.filter(inScope)) if (!state.has(f)) visit(f);
  return [...found];
}

/** Every break of the three rules, one line each. */
function violations(g: Graph): string[] {
  const out = circles(g, (f) => ["lib", "plugins", "ipam"].includes(room(f)));
  for (const [file, targets] of g.edges) {
    for (const t of targets) {
      const from = pluginOf(file);
      const to = pluginOf(t);
      if (from && to && from !== to) out.push(`plugin imports another plugin: ${file} -> ${t}`);
      if (room(file) === "lib" && room(t) !== "lib") out.push(`lib imports outside lib: ${file} -> ${t}`);
    }
  }
  return out.sort();
}

describe("importsOf", () => {
  it("reads static, multi-line, type-only, side-effect, re-export and dynamic imports, and skips comments", () => {
    const src = [
      `/** @example import { x } from "./in-a-doc-comment.js"; */`,
      `// import { y } from "./in-a-line-comment.js";`,
      `import { a } from "./a.js";`,
      `import {\n  b,\n  type B,\n} from "../b.js";`,
      `import type { C } from "./c.js";`,
      `import "./d.js";`,
      `export { e } from "./e.js";`,
      `export * from "./f.js";`,
      `const g = await import("./g.js");`,
      `let h: import("./h.js").H;`,
      `import { readFileSync } from "node:fs";`,
      `const s = "import { z } from './not-code.js'";`,
      `const glob = "/sys/class/net/*";`,
      `import { after } from "./after-a-glob.js";`,
    ].join("\n");
    expect(importsOf(src).sort()).toEqual([
      "../b.js",
      "./a.js",
      "./after-a-glob.js",
      "./c.js",
      "./d.js",
      "./e.js",
      "./f.js",
      "./g.js",
      "./h.js",
      "node:fs",
    ]);
  });
});

describe("architecture: the import rules", () => {
  const g = buildGraph();

  it("reads the sources (every relative import names a file)", () => {
    expect(g.files.length).toBeGreaterThan(50);
    expect(g.unresolved).toEqual([]);
    // The graph is real: a module known to import another has that edge.
    expect(g.edges.get("plugins/bridge/add.ts")).toContain("lib/invoke.ts");
  });

  it("finds a circle, a plugin importing another and lib importing outside lib when there is one", () => {
    const fake: Graph = {
      files: ["lib/a.ts", "lib/b.ts", "plugins/x/main.ts", "ipam/y/main.ts"],
      edges: new Map([
        ["lib/a.ts", ["lib/b.ts"]],
        ["lib/b.ts", ["lib/a.ts", "plugins/x/main.ts"]],
        ["plugins/x/main.ts", ["ipam/y/main.ts", "lib/a.ts"]],
        ["ipam/y/main.ts", []],
      ]),
      unresolved: [],
    };
    expect(violations(fake)).toEqual([
      "circle: lib/a.ts -> lib/b.ts -> lib/a.ts",
      "circle: lib/a.ts -> lib/b.ts -> plugins/x/main.ts -> lib/a.ts",
      "lib imports outside lib: lib/b.ts -> plugins/x/main.ts",
      "plugin imports another plugin: plugins/x/main.ts -> ipam/y/main.ts",
    ]);
  });

  it("holds for the sources: no violation at all", () => {
    expect(violations(g)).toEqual([]);
  });
});

// 4. The code is runtime-neutral: the `Bun` global is read in lib/runtime.ts only (which hands lib/spawn.ts its
//    process starter), and node:child_process is loaded in lib/spawn.ts only, so every child starts in one place.
describe("architecture: the runtime shows in two modules", () => {
  const sources = new Map(ROOMS.flatMap(tsFiles).map((f) => [f, stripComments(readFileSync(join(root, f), "utf8"))]));
  const using = (re: RegExp) => [...sources].filter(([, src]) => re.test(src)).map(([f]) => f);

  it("reads the Bun global only in lib/runtime.ts", () => {
    expect(using(/\bBun\s*[.?[]|globalThis\s*as[^)]*\bBun\b/)).toEqual(["lib/runtime.ts"]);
  });

  it("starts child processes only in lib/spawn.ts", () => {
    expect(using(/["']node:child_process["']/)).toEqual(["lib/spawn.ts"]);
    expect(using(/\bbunSpawner\s*\(/).sort()).toEqual(["lib/runtime.ts", "lib/spawn.ts"]);
  });
});
