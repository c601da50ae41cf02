/**
 * `cni-nft completion bash|zsh`: a completion script for the shell: commands, each command's
 * flags, network names (asked of `cni-nft completion networks` when completing, so they are
 * those of the config directory then), namespace names under /run/netns, directories for
 * directory options.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfList } from "./libcni.js";

const ENV_FLAGS = [
  "--json",
  "--ifname",
  "--container-id",
  "--netconf-path",
  "--cni-path",
  "--cache-dir",
  "--help",
];
const SETTINGS_FLAGS = ["--netconf-path", "--cni-path", "--cache-dir"];

interface CommandSpec {
  name: string;
  about: string;
  flags: string[];
  /** What the positionals are, in order; the last repeats. */
  args: ("network" | "netns" | "file" | "shell" | "any")[];
}

export const COMMAND_SPECS: CommandSpec[] = [
  {
    name: "add",
    about: "attach a network namespace to a network",
    flags: ENV_FLAGS,
    args: ["network", "netns"],
  },
  { name: "del", about: "detach it", flags: ENV_FLAGS, args: ["network", "netns"] },
  { name: "check", about: "verify an attachment", flags: ENV_FLAGS, args: ["network", "netns"] },
  { name: "gc", about: "release what no cached attachment holds", flags: ENV_FLAGS, args: ["network"] },
  {
    name: "status",
    about: "ask the plugins whether a network is ready",
    flags: ENV_FLAGS,
    args: ["network"],
  },
  {
    name: "list",
    about: "every attachment with its live state",
    flags: ["--json", "--check", "--no-color", ...SETTINGS_FLAGS, "--help"],
    args: ["network"],
  },
  {
    name: "inspect",
    about: "everything the host holds for one attachment",
    flags: ["--json", "--no-color", ...SETTINGS_FLAGS, "--help"],
    args: ["any"],
  },
  {
    name: "install",
    about: "copy the plugins into /opt/cni/bin",
    flags: [
      "--bin-dir",
      "--conf-dir",
      "--conflist",
      "--pod-cidr",
      "--pod-cidr-from-node",
      "--source",
      "--resident",
      "--systemd-dir",
      "--force",
      "--json",
      "--help",
    ],
    args: [],
  },
  {
    name: "translate",
    about: "iptables-save into nft",
    flags: ["--apply", "--json", "--owner", "--help"],
    args: ["file"],
  },
  {
    name: "migrate",
    about: "move live attachments to nftables or iptables",
    flags: ["--to", "--dry-run", "--json", "--cache-dir", "--parallel", "--help"],
    args: ["network"],
  },
  {
    name: "restore",
    about: "re-create what a firewall flush or reload removed",
    flags: ["--dry-run", "--json", "--cache-dir", "--help"],
    args: ["network"],
  },
  { name: "doctor", about: "diagnose the host", flags: ["--json", "--help"], args: [] },
  {
    name: "resident",
    about: "serve plugin calls from a warm process",
    flags: ["--socket", "--idle-exit", "--log-calls", "--help"],
    args: [],
  },
  { name: "completion", about: "print a shell completion script", flags: ["--help"], args: ["shell"] },
];

const DIR_FLAGS = ["--netconf-path", "--cache-dir", "--bin-dir", "--conf-dir", "--source", "--systemd-dir"];
const FILE_FLAGS = ["--conflist"];
const VALUE_FLAGS = [
  "--ifname",
  "--container-id",
  "--cni-path",
  "--owner",
  "--pod-cidr",
  "--pod-cidr-from-node",
  "--to",
  "--parallel",
  "--socket",
  "--idle-exit",
];

export const COMPLETION_HELP = `Usage: cni-nft completion bash|zsh

Prints a completion script for the shell: commands, flags, network names from the config
directory ($NETCONFPATH, else /etc/cni/net.d) and namespace names from /run/netns.

Examples:
  source <(cni-nft completion bash)                  # in ~/.bashrc
  cni-nft completion zsh > "\${fpath[1]}/_cni-nft"    # then: autoload -U compinit && compinit`;

/** The names of the networks in `dir` (files that do not parse are skipped, as libcni does). */
export async function networkNames(dir: string): Promise<string[]> {
  const files = await readdir(dir).catch(() => [] as string[]);
  const names = new Set<string>();
  for (const f of files.filter((x) => /\.(conflist|conf|json)$/.test(x)))
    try {
      names.add(parseConfList(await readFile(join(dir, f), "utf8"), f).name);
    } catch {
      /* not a network config */
    }
  return [...names].sort();
}

const words = (xs: readonly string[]): string => xs.join(" ");

export function bashScript(): string {
  const flagCases = COMMAND_SPECS.map((c) => `    ${c.name}) flags="${words(c.flags)}" ;;`).join("\n");
  const argCases = COMMAND_SPECS.map((c) => `    ${c.name}) kinds="${c.args.join(" ")}" ;;`).join("\n");
  return `# bash completion for cni-nft (cni-nft completion bash)
_cni_nft() {
  local cur prev cmd flags kinds kind i n
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  COMPREPLY=()
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${words(COMMAND_SPECS.map((c) => c.name))}" -- "$cur"))
    return 0
  fi
  cmd="\${COMP_WORDS[1]}"
  case "$prev" in
    ${DIR_FLAGS.join("|")}) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
    ${FILE_FLAGS.join("|")}) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    ${VALUE_FLAGS.join("|")}) return 0 ;;
  esac
  case "$cmd" in
${flagCases}
    *) return 0 ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return 0
  fi
  case "$cmd" in
${argCases}
  esac
  # the how-many-th positional this is (options and their values skipped)
  n=0
  for ((i = 2; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      ${[...DIR_FLAGS, ...FILE_FLAGS, ...VALUE_FLAGS].join("|")}) ((i++)) ;;
      -*) ;;
      *) ((n++)) ;;
    esac
  done
  set -- $kinds
  [ $# -eq 0 ] && return 0
  if [ "$n" -lt $# ]; then shift "$n"; kind="$1"; else kind="\${!#}"; fi
  case "$kind" in
    network) COMPREPLY=($(compgen -W "$(cni-nft completion networks 2>/dev/null)" -- "$cur")) ;;
    netns) COMPREPLY=($(compgen -W "$(ls /run/netns 2>/dev/null)" -- "$cur")) ;;
    file) COMPREPLY=($(compgen -f -- "$cur")) ;;
    shell) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
  esac
  return 0
}
complete -F _cni_nft cni-nft
`;
}

export function zshScript(): string {
  const described = COMMAND_SPECS.map((c) => `    '${c.name}:${c.about}'`).join("\n");
  const flagCases = COMMAND_SPECS.map((c) => `    ${c.name}) flags=(${words(c.flags)}) ;;`).join("\n");
  const argCases = COMMAND_SPECS.map((c) => `    ${c.name}) kinds=(${c.args.join(" ")}) ;;`).join("\n");
  return `#compdef cni-nft
# zsh completion for cni-nft (cni-nft completion zsh)
_cni_nft() {
  local -a cmds flags kinds
  local cmd kind prev i n
  if (( CURRENT == 2 )); then
    cmds=(
${described}
    )
    _describe 'command' cmds
    return
  fi
  cmd=$words[2]
  prev=$words[CURRENT-1]
  case $prev in
    ${DIR_FLAGS.join("|")}) _files -/; return ;;
    ${FILE_FLAGS.join("|")}) _files; return ;;
    ${VALUE_FLAGS.join("|")}) return ;;
  esac
  case $cmd in
${flagCases}
    *) return ;;
  esac
  if [[ $PREFIX == -* ]]; then
    compadd -- $flags
    return
  fi
  case $cmd in
${argCases}
  esac
  n=0
  for (( i = 3; i < CURRENT; i++ )); do
    case $words[i] in
      ${[...DIR_FLAGS, ...FILE_FLAGS, ...VALUE_FLAGS].join("|")}) (( i++ )) ;;
      -*) ;;
      *) (( n++ )) ;;
    esac
  done
  (( $#kinds == 0 )) && return
  if (( n < $#kinds )); then kind=$kinds[n+1]; else kind=$kinds[-1]; fi
  case $kind in
    network) compadd -- \${(f)"$(cni-nft completion networks 2>/dev/null)"} ;;
    netns) compadd -- \${(f)"$(ls /run/netns 2>/dev/null)"} ;;
    file) _files ;;
    shell) compadd -- bash zsh ;;
  esac
}
if (( $+functions[compdef] )); then compdef _cni_nft cni-nft; fi
`;
}

export interface CompletionIo {
  env: Record<string, string | undefined>;
  out(s: string): void;
  err(s: string): void;
}

export async function completion(argv: string[], io: CompletionIo): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { help: { type: "boolean", short: "h" }, "netconf-path": { type: "string" } },
    });
    if (values.help) {
      io.out(COMPLETION_HELP + "\n");
      return 0;
    }
    const [shell, ...rest] = positionals;
    if (rest.length) throw new Error(`too many arguments`);
    if (shell === "bash") io.out(bashScript());
    else if (shell === "zsh") io.out(zshScript());
    else if (shell === "networks") {
      const names = await networkNames(values["netconf-path"] ?? io.env.NETCONFPATH ?? "/etc/cni/net.d");
      io.out(names.map((n) => `${n}\n`).join(""));
    } else throw new Error(shell ? `no completion for shell "${shell}"` : "missing SHELL");
    return 0;
  } catch (e) {
    io.err(
      `cni-nft completion: ${(e as Error).message}; run 'cni-nft completion bash' or 'cni-nft completion zsh'\n`,
    );
    return 1;
  }
}
