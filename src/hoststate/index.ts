/** Per-attachment host state: one contract for every component and technology (docs/architecture.md). */
export * from "./contract.js";
export * from "./select.js";
export * from "./run.js";
export * from "./host.js";
export * from "./settle.js";
export * from "./records.js";
