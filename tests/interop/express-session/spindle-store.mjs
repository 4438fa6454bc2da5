// SpindleStore: connect-redis's RedisStore that also keeps Spindle's per-user
// session index, so Spindle's session list and logout-everywhere
// (GET/DELETE /auth/sessions) cover sessions Express created. Without it, an
// Express session enters the index only when Spindle first checks it.
//
// The index is what Spindle keeps (docs/sessions.md#session-index): the
// sorted set `spindle:user-sessions:{<user id>}`, members sids, scored by the
// session's creation time in ms (`ZADD NX`: the first score stays), expiring
// no sooner than its longest-lived session. Each write is one MULTI with the
// session's own command. Needs a node-redis client (v4 or v5, as connect-redis
// 9 uses), Redis 7.0 or later (EXPIRE NX/GT), and one Redis node: Express's
// sids carry no hash tag, so the session and the index are in different
// cluster slots (Spindle's own sids start with `{<user id>}`; on a cluster it
// indexes Express's sessions in steps of one key each, see
// docs/sessions.md#redis-cluster).
//
//   import { SpindleStore } from "./spindle-store.mjs";
//   app.use(session({ store: new SpindleStore({ client: redis }), ... }));

import { RedisStore } from "connect-redis";

export const INDEX_PREFIX = "spindle:user-sessions:";
/** The index key of a user: `spindle:user-sessions:{<id>}` (the braces are its hash tag). */
export const indexKey = (id) => `${INDEX_PREFIX}{${id}}`;

/** The user a session belongs to, as Spindle reads it: an integer `user.id`. */
function userId(sess) {
  const id = sess?.user?.id;
  return Number.isSafeInteger(id) ? id : null;
}

export class SpindleStore extends RedisStore {
  /** Adds `sid` to its user's index, in `multi`, and extends the index's
   * expiry to `ttl` seconds (none with `disableTTL`, as the session). */
  #index(multi, sid, sess, ttl) {
    const key = indexKey(userId(sess));
    const created = sess.spindle?.created_at;
    const score = Number.isSafeInteger(created) ? created : Date.now();
    multi.zAdd(key, { score, value: sid }, { condition: "NX" });
    if (this.disableTTL) return multi;
    return multi
      .expire(key, ttl, "NX") // a new index: its first expiry
      .expire(key, ttl, "GT"); // else only ever later
  }

  async set(sid, sess, cb) {
    const ttl = this.getTTL(sess);
    // No user (anonymous) or over (connect-redis deletes it): as connect-redis.
    if (ttl <= 0 || userId(sess) === null) return super.set(sid, sess, cb);
    try {
      const value = this.serializer.stringify(sess);
      const options = this.disableTTL ? {} : { expiration: { type: "EX", value: ttl } };
      const multi = this.client.multi().set(this.prefix + sid, value, options);
      await this.#index(multi, sid, sess, ttl).exec();
      return cb?.(null);
    } catch (err) {
      if (cb) return cb(err);
      throw err;
    }
  }

  async touch(sid, sess, cb) {
    const ttl = this.getTTL(sess);
    if (this.disableTouch || this.disableTTL || ttl <= 0 || userId(sess) === null) return super.touch(sid, sess, cb);
    try {
      const multi = this.client.multi().expire(this.prefix + sid, ttl);
      await this.#index(multi, sid, sess, ttl).exec();
      return cb?.(null);
    } catch (err) {
      if (cb) return cb(err);
      throw err;
    }
  }

  async destroy(sid, cb) {
    const key = this.prefix + sid;
    try {
      // The index entry names the user, who is in the session: read it first.
      // (A stale entry left by a race is harmless: Spindle trims entries
      // whose session is gone.)
      const raw = await this.client.get(key);
      let id = null;
      try {
        id = raw ? userId(await this.serializer.parse(raw)) : null;
      } catch {
        // unreadable: delete it all the same
      }
      const multi = this.client.multi().del(key);
      if (id !== null) multi.zRem(indexKey(id), sid);
      await multi.exec();
      return cb?.(null);
    } catch (err) {
      if (cb) return cb(err);
      throw err;
    }
  }
}
