// The Redis interface @upstash/ratelimit needs — evalsha(hash, keys, args)
// and eval(script, keys, args) — over node-redis, for a Node service that
// talks RESP to the same Redis as Spindle.
//
// @upstash/ratelimit's scripts start with `#!lua flags=allow-key-locking`,
// a flag Redis 7.0 rejects; it is dropped here. Its `hash` is the SHA-1 of
// the script with that line, so the adapter remembers which SHA Redis knows
// each one by, and answers NOSCRIPT (upstash then sends EVAL once) until it
// has seen a script.

import { createHash } from "node:crypto";

const SHEBANG = /^#!lua[^\n]*\n/;
const sha1 = (s) => createHash("sha1").update(s).digest("hex");
const strings = (xs) => (xs ?? []).map((x) => (x === null || x === undefined ? "" : String(x)));

export function ratelimitRedis(client) {
  const known = new Map(); // upstash's hash -> the SHA of the script Redis runs
  return {
    async eval(script, keys, args) {
      const body = script.replace(SHEBANG, "");
      known.set(sha1(script), sha1(body));
      return client.eval(body, { keys: strings(keys), arguments: strings(args) });
    },
    async evalsha(hash, keys, args) {
      const sha = known.get(hash);
      if (!sha) throw new Error("NOSCRIPT No matching script");
      return client.evalSha(sha, { keys: strings(keys), arguments: strings(args) });
    },
  };
}

/** The same over @upstash/redis (REST, e.g. through spindle-rest-gateway):
 * its `eval`/`evalsha` take (script, keys, args) already. */
export function ratelimitRest(client) {
  const known = new Map();
  return {
    async eval(script, keys, args) {
      const body = script.replace(SHEBANG, "");
      known.set(sha1(script), sha1(body));
      return client.eval(body, strings(keys), strings(args));
    },
    async evalsha(hash, keys, args) {
      const sha = known.get(hash);
      if (!sha) throw new Error("NOSCRIPT No matching script");
      return client.evalsha(sha, strings(keys), strings(args));
    },
  };
}
