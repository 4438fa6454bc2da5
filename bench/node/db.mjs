// The users table in SQLite through better-sqlite3: the same columns as
// Spindle's (id, username unique case-insensitively, password_hash,
// display_name, email, created_at, updated_at as ISO-8601 UTC, version).
// The primary creates the schema; every worker opens its own connection
// (better-sqlite3 is synchronous: a query blocks that worker's event loop,
// which is what an idiomatic better-sqlite3 app does).

import Database from "better-sqlite3";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id            INTEGER PRIMARY KEY,
  username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password_hash TEXT NOT NULL,
  display_name  TEXT,
  email         TEXT,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  version       INTEGER NOT NULL DEFAULT 1
);`;

export function open(path) {
  const db = new Database(path, { timeout: 5000 }); // busy_timeout: workers write concurrently
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  return db;
}

export function createSchema(path) {
  const db = open(path);
  db.exec(SCHEMA);
  db.close();
}

const COLUMNS = "id, username, display_name, email, created_at, updated_at, version";

/** Prepared statements for one worker. */
export function statements(db) {
  const insert = db.prepare(
    `INSERT INTO users (username, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING ${COLUMNS}`,
  );
  const byName = db.prepare(`SELECT ${COLUMNS}, password_hash FROM users WHERE username = ?`);
  const byId = db.prepare(`SELECT ${COLUMNS} FROM users WHERE id = ?`);
  const update = db.prepare(
    `UPDATE users SET
       display_name = CASE WHEN @set_name THEN @display_name ELSE display_name END,
       email        = CASE WHEN @set_email THEN @email ELSE email END,
       updated_at   = @now,
       version      = version + 1
     WHERE id = @id AND (@version IS NULL OR version = @version)
     RETURNING ${COLUMNS}`,
  );
  return {
    /** The new user, or null when the name is taken. */
    insert(username, hash, now) {
      try {
        return insert.get(username, hash, now, now);
      } catch (e) {
        if (e.code === "SQLITE_CONSTRAINT_UNIQUE") return null;
        throw e;
      }
    },
    byName: (username) => byName.get(username) ?? null,
    byId: (id) => byId.get(id) ?? null,
    /** The updated user, or null when there is no such row (at that version). */
    update: (id, fields, version, now) =>
      update.get({
        id,
        version: version ?? null,
        now,
        set_name: "display_name" in fields ? 1 : 0,
        display_name: fields.display_name ?? null,
        set_email: "email" in fields ? 1 : 0,
        email: fields.email ?? null,
      }) ?? null,
  };
}
