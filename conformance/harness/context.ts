/**
 * The context objects a case run passes around explicitly: the run (RunContext, from the CLI), the case's built
 * environment (CaseEnv: its node and pod namespaces, and what each ADD attached), and the plan of one step
 * (StepPlan). The functions of topology.ts, step.ts, action.ts and check-kernel.ts take these instead of closing
 * over a runner's locals, so each can be read and tested on its own.
 */
import type { CniRuntime } from "../runner/index.js";
import type { MachineFeatures, PluginSet } from "./features.js";
import type { KnownDifferences } from "./known.js";
import type { StepOutcome } from "./outcome.js";
import type { RunSandbox } from "./sandbox.js";
import type { Expect, NodeDef, StepDef } from "./schema.js";

/** What the CLI gives a case run: where to create things, which plugins, and where each outcome goes. */
export interface RunContext {
  sandbox: RunSandbox;
  plugins: PluginSet;
  machine: MachineFeatures;
  known: KnownDifferences;
  /** Case number in this run, for unique names. */
  index: number;
  /** Capture normalized kernel state after each step (differential mode). */
  snapshot?: boolean;
  timeoutMs?: number;
  onStep?: (o: StepOutcome) => void;
}

/** A node of the case: its namespace, its files (config, host-local data, result cache), and its runtime. */
export interface NodeEnv {
  def: NodeDef;
  ns: string;
  path: string;
  confDir: string;
  dataDir: string;
  cacheDir: string;
  runtime: CniRuntime;
  /** The command prefix that runs a plugin inside the node namespace. */
  wrapper: string[];
  /** The node's addresses on the underlay (only with an underlay: `outside` or several nodes). */
  underlay4?: string;
  underlay6?: string;
}

/** A pod of the case: its namespace (CNI_NETNS) and container ID. */
export interface PodEnv {
  name: string;
  node: NodeEnv;
  ns: string;
  path: string;
  containerID: string;
  /** Its namespace was deleted by a NETNS-DEL step. */
  deleted: boolean;
}

/** What the last ADD of a pod interface attached: later steps resolve `$veth`, MACs and addresses from it. */
export interface Attachment {
  pod: PodEnv;
  ifname: string;
  network: string;
  result?: Record<string, unknown>;
  hostVeth?: string;
}

/** Everything a case created and the state its steps share, removed by `teardownCase`. */
export interface CaseEnv {
  /** The case's directory under the run's temporary directory. */
  tmp: string;
  /** Namespaces created so far, in creation order (deleted in reverse). */
  created: string[];
  nodes: Map<string, NodeEnv>;
  pods: Map<string, PodEnv>;
  /** Keyed by `attachmentKey(pod, ifname)`. */
  attachments: Map<string, Attachment>;
  /** The outside host's namespace path, when the topology has one. */
  outsidePath?: string;
}

/** The key of a pod interface in `CaseEnv.attachments`. */
export function attachmentKey(pod: string, ifname: string): string {
  return `${pod}/${ifname}`;
}

/** One step resolved against the case environment: what it acts on and what it must observe. */
export interface StepPlan {
  /** 0-based position in the case. */
  index: number;
  step: StepDef;
  /** The step label: its name or 1-based number. */
  label: string;
  title: string;
  /** The expectation with the implementation's `byImpl` overrides merged. */
  expect: Expect;
  pod?: PodEnv;
  /** The pod's node, else the step's `node`, else the first node. */
  node: NodeEnv;
  ifname: string;
  /** The attachment key of the step's pod interface ("" without a pod). */
  key: string;
}
