/** IP addresses, CIDRs and MAC addresses: one module, on ipaddr.js. */
export * from "./ip.js";
export * from "./mac.js";
