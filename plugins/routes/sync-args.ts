/**
 * The parsed arguments of `routes sync`, one shape per mode: what cli.ts produces and the sync runner and the
 * Kubernetes controller consume (their own module, so the controller need not import the CLI that loads it).
 */
import type { ForwardSpec } from "./forward.js";

export interface FileArgs {
  mode: "file";
  nodes: string;
  node: string;
  dryRun: boolean;
  intervalMs: number | undefined;
  /** --forward-accept; undefined: the forward rules are not looked at. */
  forward: ForwardSpec | undefined;
}

export interface KubernetesArgs {
  mode: "kubernetes";
  /** undefined: the in-cluster service account. */
  kubeconfig: string | undefined;
  node: string;
  dryRun: boolean;
  resyncMs: number;
  requestTimeoutMs: number;
  listen: { host: string; port: number } | undefined;
  healthFile: string | undefined;
  /** --forward-accept; undefined: the forward rules are not looked at. */
  forward: ForwardSpec | undefined;
}

export interface CleanupArgs {
  mode: "cleanup";
  dryRun: boolean;
}

export type SyncArgs = FileArgs | KubernetesArgs | CleanupArgs;
