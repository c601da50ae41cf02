/** Config fields the link plugins share (valibot). */
import * as v from "valibot";

/** An interface name or empty (a master, a bridge, a VRF): no whitespace, `/` or `:`, 15 bytes. */
export const optionalIfname = v.optional(
  v.pipe(v.string(), v.regex(/^[^\s/:]{0,15}$/, "must be an interface name")),
  "",
);
