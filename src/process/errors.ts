/**
 * Why a program could not do what was asked, classified once here for every tool the project
 * runs (ip, bridge, nft, iptables, conntrack, dbus-send, IPAM plugins, ...): callers branch on
 * `kind`, never on message text.
 */
import { existsSync } from "node:fs";
import { ambientEnv } from "../cni/ambient.js";

export type ProcessFailureKind =
  | "not-found" // the program (or, through nsenter, its target) does not exist
  | "permission" // the program exists but may not be executed
  | "exit" // it ran and exited non-zero; stderr says why
  | "timeout" // it ran longer than the caller allowed and was killed
  | "killed" // a signal ended it
  | "spawn"; // the operating system refused to start it for another reason

export class ProcessError extends Error {
  override readonly name = "ProcessError";
  constructor(
    readonly kind: ProcessFailureKind,
    /** The program's argv as given by the caller (without an nsenter wrapper). */
    readonly argv: readonly string[],
    message: string,
    readonly stderr = "",
    readonly exitCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isProcessError(e: unknown, kind?: ProcessFailureKind): e is ProcessError {
  return e instanceof ProcessError && (kind === undefined || e.kind === kind);
}

function onPath(prog: string): boolean {
  const dirs = prog.includes("/") ? [""] : (ambientEnv()["PATH"] ?? "").split(":").map((d) => `${d || "."}/`);
  return dirs.some((d) => existsSync(d + prog));
}

/** An error of the operating system when starting a program (`spawn` emitted "error"). */
export function spawnFailure(argv: readonly string[], e: NodeJS.ErrnoException): ProcessError {
  const prog = argv[0] ?? "";
  // execvp reports EACCES for a missing program when a PATH directory cannot be searched.
  if (e.code === "ENOENT" || (e.code === "EACCES" && !onPath(prog)))
    return new ProcessError("not-found", argv, `${prog}: not found`, "", undefined, { cause: e });
  if (e.code === "EACCES" || e.code === "EPERM")
    return new ProcessError("permission", argv, `${prog}: permission denied`, "", undefined, { cause: e });
  return new ProcessError("spawn", argv, `could not run ${prog}: ${e.message}`, "", undefined, { cause: e });
}

/** Exit status the shell and nsenter use when the program to execute does not exist. */
const EXIT_NOT_FOUND = 127;
const EXIT_NOT_EXECUTABLE = 126;

/** The failure a finished run represents, or undefined for exit 0. */
export function exitFailure(
  argv: readonly string[],
  done: { code: number; signal?: string; stderr: string; timedOut?: boolean },
): ProcessError | undefined {
  if (done.code === 0 && !done.signal && !done.timedOut) return undefined;
  const prog = argv[0] ?? "";
  const stderr = done.stderr.trim();
  const said = stderr ? `: ${stderr.replace(/\s*\n\s*/g, "; ")}` : "";
  if (done.timedOut)
    return new ProcessError("timeout", argv, `${prog}: timed out${said}`, done.stderr, done.code);
  if (done.signal)
    return new ProcessError(
      "killed",
      argv,
      `${prog}: killed by ${done.signal}${said}`,
      done.stderr,
      done.code,
    );
  if (done.code === EXIT_NOT_FOUND)
    return new ProcessError("not-found", argv, `${prog}: not found${said}`, done.stderr, done.code);
  if (done.code === EXIT_NOT_EXECUTABLE)
    return new ProcessError("permission", argv, `${prog}: cannot execute${said}`, done.stderr, done.code);
  return new ProcessError("exit", argv, `${prog} exited with ${done.code}${said}`, done.stderr, done.code);
}

/**
 * What a tool's error message says happened, for the outcomes callers accept instead of failing
 * ("it is there already" on ensure, "it is gone" on delete, "the namespace is gone" on DEL).
 * iproute2, iptables, nsenter and nft print these untranslated (field facts), so the message is
 * the only signal they give; this is the one place that reads it.
 */
export type MessageKind = "exists" | "not-found" | "netns-gone" | "unsupported";

const MESSAGE_KINDS: ReadonlyArray<[RegExp, MessageKind]> = [
  // nsenter's "cannot open /run/netns/x", ip -n's "Cannot open network namespace", setns's EINVAL
  [/cannot open|Invalid argument/i, "netns-gone"],
  [/File exists|already assigned|already exists/i, "exists"],
  [/Cannot find device|No such device|does not exist|Cannot find|No such file or directory/i, "not-found"],
  // the kernel lacks a link type or feature
  [/Unknown device type|Operation not supported|not supported/i, "unsupported"],
];

export function classifyMessage(text: string): MessageKind | undefined {
  for (const [re, kind] of MESSAGE_KINDS) if (re.test(text)) return kind;
  return undefined;
}
