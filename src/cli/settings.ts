/** Where the CLI finds things: options first, then cnitool's environment variables, then defaults. */

export interface Settings {
  confDir: string;
  cniPath: string[];
  cacheDir: string;
  /** Base environment for plugins. */
  pluginEnv: Record<string, string | undefined>;
}

export const SETTINGS_OPTIONS = {
  "netconf-path": { type: "string" },
  "cni-path": { type: "string" },
  "cache-dir": { type: "string" },
} as const;

export const SETTINGS_HELP = `  --netconf-path DIR   network configs (default $NETCONFPATH, else /etc/cni/net.d)
  --cni-path DIRS      plugin directories, ':'-separated (default $CNI_PATH, else /opt/cni/bin)
  --cache-dir DIR      libcni's cache (default $CNI_CACHE_DIR, else /var/lib/cni)`;

export function settingsFrom(
  values: { "netconf-path"?: string; "cni-path"?: string; "cache-dir"?: string },
  env: Record<string, string | undefined>,
): Settings {
  return {
    confDir: values["netconf-path"] ?? env.NETCONFPATH ?? "/etc/cni/net.d",
    cniPath: (values["cni-path"] ?? env.CNI_PATH ?? "/opt/cni/bin").split(":").filter(Boolean),
    cacheDir: values["cache-dir"] ?? env.CNI_CACHE_DIR ?? "/var/lib/cni",
    pluginEnv: { PATH: env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
  };
}
