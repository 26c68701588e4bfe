/**
 * CNI error objects and the well-known codes (SPEC.md "Error result").
 *
 * Every failure a plugin reports leaves the process as one of these, printed on stdout.
 * A verb handler throws a CniError for what it decides; a kernel tool's failure below it is a ToolError
 * (lib/tool-error.ts), which skel turns into one here (asCniError).
 *
 * @example
 *   throw new CniError(ErrorCode.InvalidEnvironmentVariables, "required env variables [CNI_NETNS] missing");
 */
import { ToolError } from "./tool-error.js";

export const ErrorCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration; the message names key and value. */
  UnsupportedField: 2,
  /** Container unknown or does not exist (the runtime need not clean up). */
  UnknownContainer: 3,
  /** Invalid necessary environment variables; the message names them. */
  InvalidEnvironmentVariables: 4,
  /** I/O failure (reading stdin, writing state). */
  IOFailure: 5,
  /** Failed to decode content (config JSON, a delegate's output). */
  DecodingFailure: 6,
  /** Invalid network configuration. */
  InvalidNetworkConfig: 7,
  /** CNI_NETNS is not usable (the plugin's own namespace, or not a network namespace). Go reference: ErrInvalidNetNS. */
  InvalidNetNS: 8,
  /** Transient: try again later (a lock could not be taken in time, a delegate timed out). */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot service ADD (for example: no free address left). */
  NotAvailable: 50,
  /** STATUS: not available, and existing containers may have limited connectivity. */
  NotAvailableLimitedConnectivity: 51,
  /** Plugin-specific (>= 100): a kernel operation (iproute2, sysctl, firewall) failed. */
  KernelOperationFailed: 100,
  /** Plugin-specific: the IPAM range set has no free address. */
  AddressesExhausted: 101,
  /** Plugin-specific: an address or interface is already taken by another attachment. */
  AlreadyInUse: 102,
  /** Plugin-specific: CHECK found the state different from what ADD created. */
  CheckFailed: 103,
  /** Plugin-specific: an internal error with no better code (the Go reference uses 999 for everything). */
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode] | number;

export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: ErrorCodeValue, msg: string, details = "") {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }

  /** The error object as the spec defines it, for a given cniVersion. */
  toJSON(cniVersion: string): CniErrorObject {
    const out: CniErrorObject = { cniVersion, code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }
}

export interface CniErrorObject {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/**
 * Wrap anything thrown into a CniError, as the reference's skel does with a Go error: CniErrors stay as they are; a
 * ToolError is code 11 when the tool hit its deadline (try again later), 999 when it could not be started (the
 * reference's answer to an exec failure), else 100 (a kernel operation failed), its message naming the command and
 * stderr; anything else is `fallbackCode`.
 */
export function asCniError(err: unknown, fallbackCode: number = ErrorCode.Internal): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof ToolError) return toolErrorAsCni(err);
  if (err instanceof Error) return new CniError(fallbackCode, err.message);
  return new CniError(fallbackCode, String(err));
}

function toolErrorAsCni(e: ToolError): CniError {
  if (e.kind === "timeout") return new CniError(ErrorCode.TryAgainLater, e.message, e.stderr.trim());
  if (e.errno !== undefined) return new CniError(ErrorCode.Internal, e.message, `${e.tool}: ${e.errno}`);
  return new CniError(ErrorCode.KernelOperationFailed, e.message);
}
