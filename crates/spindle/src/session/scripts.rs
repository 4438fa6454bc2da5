//! The Lua scripts that keep `sess:<sid>` and the per-user index in step.
//!
//! Each is one round trip and atomic. They take time from ARGV, never from
//! the server clock, and return flat arrays or integers.
//!
//! Redis Cluster: every key a script touches is in one slot. The sids
//! Spindle issues carry their user's hash tag (`{<id>}`, as the index key
//! does), so a session and its index share a slot; the index scripts reach
//! only tagged session keys, and hand the other sids (Express's) back to the
//! caller, which deletes or reads them one key at a time
//! (docs/sessions.md#redis-cluster).

crate::scripts! {
    /// Creates a session and indexes it under its user.
    pub CREATE = ("session/create", include_str!("create.lua"));
    /// Writes a session back only if it is unchanged since it was read: a
    /// compare-and-set on the SHA-1 of the stored value. A logout (the key is
    /// gone) or another write in between is never undone; the caller re-reads
    /// and re-applies its change, so concurrent edits of different fields all land.
    pub COMMIT = ("session/commit", include_str!("commit.lua"));
    /// Destroys one session and its index entry.
    pub DESTROY = ("session/destroy", include_str!("destroy.lua"));
    /// Destroys every session of a user (logout everywhere).
    pub DESTROY_ALL = ("session/destroy_all", include_str!("destroy_all.lua"));
    /// Destroys the session of this user whose handle matches.
    pub DESTROY_HANDLE = ("session/destroy_handle", include_str!("destroy_handle.lua"));
    /// Lists a user's live sessions, newest first, trimming dead index entries.
    pub LIST = ("session/list", include_str!("list.lua"));
    /// Adds (or removes) an index entry of a sid without its user's tag: a
    /// step of its own, as that session is in another slot.
    pub INDEX_ADD = ("session/index_add", include_str!("index_add.lua"));
}
