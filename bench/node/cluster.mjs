#!/usr/bin/env node
// The Node.js baseline as a node:cluster: the primary validates the
// settings, creates the SQLite schema and forks WORKERS workers (default:
// one per core), each an express app on the same PORT (the primary hands
// connections to workers round-robin). It prints `listening on <port>` once
// every worker is ready, re-forks a worker that dies, and stops them all on
// SIGINT/SIGTERM. See README.md for the environment.

import cluster from "node:cluster";
import { loadConfig, ensureSecret } from "./config.mjs";

if (cluster.isPrimary) {
  const generated = ensureSecret(); // before loadConfig: workers inherit the env
  let cfg;
  try {
    cfg = loadConfig();
  } catch (e) {
    console.error(`bench/node: ${e.message}`);
    process.exit(2);
  }
  if (generated) console.error("bench/node: SESSION_SECRET unset; using a random one for this run");
  if (cfg.sessionSecrets[0].length < 16) {
    console.error("bench/node: SESSION_SECRET: the first secret must be at least 16 bytes");
    process.exit(2);
  }
  const { createSchema } = await import("./db.mjs");
  createSchema(cfg.dbPath);

  let ready = 0;
  let stopping = false;
  let announced = false;
  const fork = () => {
    const w = cluster.fork();
    w.on("message", (m) => {
      if (m?.ready && !announced && ++ready === cfg.workers) {
        announced = true;
        console.log(`listening on ${m.port}`);
      }
      if (m?.fatal && !announced) {
        console.error(`bench/node: worker failed to start: ${m.fatal}`);
        stop(1);
      }
    });
  };
  for (let i = 0; i < cfg.workers; i++) fork();
  cluster.on("exit", (w, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers).length === 0) process.exit(process.exitCode ?? 0);
      return;
    }
    console.error(`bench/node: worker ${w.process.pid} exited (${signal ?? code}); forking another`);
    fork();
  });
  const stop = (code = 0) => {
    if (stopping) return;
    stopping = true;
    process.exitCode = code;
    for (const w of Object.values(cluster.workers)) w.process.kill("SIGTERM");
    if (Object.keys(cluster.workers).length === 0) process.exit(code);
    setTimeout(() => process.exit(code), 6000).unref();
  };
  process.on("SIGINT", () => stop(0));
  process.on("SIGTERM", () => stop(0));
} else {
  const { startWorker } = await import("./app.mjs");
  const cfg = loadConfig();
  try {
    const worker = await startWorker(cfg, { workerId: cluster.worker.id });
    process.send({ ready: true, port: worker.server.address().port });
    let closing = false;
    const shutdown = () => {
      if (closing) return;
      closing = true;
      setTimeout(() => process.exit(0), 5000).unref(); // long polls may hold connections
      worker.close().finally(() => process.exit(0));
    };
    process.on("SIGTERM", shutdown);
    process.on("SIGINT", () => {}); // the primary decides
  } catch (e) {
    process.send({ fatal: e.message });
    process.exit(1);
  }
}
