/**
 * CNI_NETNS checked before anything happens: a plugin that creates a bridge and only then fails
 * to enter the namespace has changed the host for nothing. A network namespace is a file of
 * nsfs (the same device as this process's /proc/self/ns/net), of type net (the magic link's
 * text for /proc/PID/ns/net, the mount's root in mountinfo for a bind mount like /run/netns/X).
 * The host's own namespace (this process's, as a runtime calls plugins from the host, or PID 1's)
 * is not a container's: a "container" veth end there, and DEL removing it, would damage the host.
 */
import { readFileSync, readlinkSync, realpathSync, statSync, type Stats } from "node:fs";
import { CniError, ErrorCode } from "./errors.js";

const HOST_NETNS = "/proc/self/ns/net";
const EXAMPLE = "give the path of the container's network namespace (/run/netns/NAME or /proc/PID/ns/net)";

function refuse(path: string, what: string): never {
  throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${path} is ${what}: ${EXAMPLE}`);
}

/** The namespace type of an nsfs file ("net", "mnt", ...), when it can be told without setns. */
function nsType(path: string): string | undefined {
  try {
    return /^(\w+):\[/.exec(readlinkSync(path))?.[1];
  } catch {
    /* not a magic link: a bind mount */
  }
  try {
    const real = realpathSync(path);
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const f = line.split(" ");
      if (f[4] === real) return /^(\w+):\[/.exec(f[3] ?? "")?.[1];
    }
  } catch {
    /* unreadable mountinfo: the device check stands alone */
  }
  return undefined;
}

/** PID 1's namespace: the machine's (or, for a runtime in a container, that container's). */
function initNetns(): Stats | undefined {
  try {
    return statSync("/proc/1/ns/net");
  } catch {
    return undefined;
  }
}

export interface NetnsCheck {
  /** The namespace is this process's own (the host's). */
  isHost: boolean;
}

/** Refuses (code 4) a CNI_NETNS that is not a network namespace; says whether it is the host's. */
export function checkNetns(path: string): NetnsCheck {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    refuse(path, code === "ENOENT" ? "missing" : `unreadable (${code ?? String(e)})`);
  }
  if (st.isDirectory()) refuse(path, "a directory");
  const host = statSync(HOST_NETNS);
  const init = initNetns();
  if (st.dev !== host.dev) refuse(path, st.isFile() ? "a regular file, not a namespace" : "not a namespace");
  const type = nsType(path);
  if (type !== undefined && type !== "net") refuse(path, `a ${type} namespace, not a network namespace`);
  return {
    isHost: st.ino === host.ino || (init !== undefined && st.ino === init.ino && st.dev === init.dev),
  };
}

/** Refuses the host's own network namespace as a container's (bridge, ptp). */
export function refuseHostNetns(path: string, check: NetnsCheck): void {
  if (check.isHost)
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${path} is the host's own network namespace: the container side would land on the host; ${EXAMPLE}`,
    );
}
