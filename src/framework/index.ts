/** Which firewall framework (iptables or nftables) host state goes to, and the per-network record. */
export * from "./choose.js";
export * from "./record.js";
export * from "./status.js";
