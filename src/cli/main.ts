#!/usr/bin/env node
/** Entry of the `cni-nft` operator CLI (see cli.ts). */
import { cli } from "./cli.js";

process.exitCode = await cli(process.argv.slice(2), {
  env: process.env,
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
