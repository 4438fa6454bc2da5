// The baseline's settings, from the environment, validated once at start
// (the primary validates them before forking, so a bad value fails fast).

import { availableParallelism } from "node:os";
import { randomBytes } from "node:crypto";

const HIGH = "1000000000/60s"; // "unlimited" for benchmarking: 10⁹ per minute

function int(name, def, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return def;
  if (!/^\d+$/.test(raw)) throw new Error(`${name}: not an integer: ${raw}`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`${name}: ${n} is outside ${min}–${max}`);
  return n;
}

const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UPSTASH_UNITS = { ms: "ms", s: "s", m: "m", h: "h", d: "d" };

/**
 * A rate-limit policy: `<limit>/<window>` (a sliding window), or Spindle's
 * own grammar `sliding_window|fixed_window <limit>/<window>` /
 * `token_bucket <refill>/<interval>[ burst <n>]`; `off` disables it.
 */
export function parsePolicy(name, raw) {
  const text = (raw ?? "").trim();
  if (text === "off") return null;
  const m = /^(?:(sliding_window|fixed_window|token_bucket)\s+)?(\d+)\/(\d+)(ms|s|m|h|d)(?:\s+burst\s+(\d+))?$/.exec(text);
  if (!m) throw new Error(`${name}: expected "<limit>/<window>" such as "100/60s" (or "off"), got ${JSON.stringify(text)}`);
  const [, algorithm = "sliding_window", limit, n, unit, burst] = m;
  if (burst && algorithm !== "token_bucket") throw new Error(`${name}: burst is for token_bucket only`);
  const windowMs = Number(n) * UNITS[unit];
  if (!(Number(limit) >= 1 && Number(limit) <= 1e9) || windowMs < 1) throw new Error(`${name}: limit 1–10⁹ and a window ≥ 1 ms`);
  return {
    algorithm,
    limit: Number(limit),
    burst: burst ? Number(burst) : Number(limit),
    windowMs,
    window: `${n} ${UPSTASH_UNITS[unit]}`, // @upstash/ratelimit's Duration
  };
}

export function loadConfig(env = process.env) {
  const secrets = (env.SESSION_SECRET ?? env.SESSION_SECRETS ?? "").split(",").filter(Boolean);
  return {
    port: int("PORT", 3100, 0, 65535),
    host: env.BIND ?? "0.0.0.0",
    workers: int("WORKERS", availableParallelism(), 1, 256),
    redisUrl: env.REDIS_URL || "redis://127.0.0.1:6379",
    dbPath: env.DB_PATH || "./baseline.sqlite",
    hostId: env.HOST_ID || "",
    sessionSecrets: secrets,
    cookieName: env.COOKIE_NAME || "connect.sid",
    sessionMaxAgeS: int("SESSION_MAX_AGE_S", 86400, 1, 34_560_000),
    trustProxy: env.TRUST_PROXY || "",
    allowedOrigins: (env.ALLOWED_ORIGINS ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    apiKeys: new Set((env.API_KEYS ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean)),
    apiRateLimit: parsePolicy("API_RATE_LIMIT", env.API_RATE_LIMIT || HIGH),
    loginRateLimit: parsePolicy("LOGIN_RATE_LIMIT", env.LOGIN_RATE_LIMIT || HIGH),
    notifyRateLimit: parsePolicy("NOTIFY_RATE_LIMIT", env.NOTIFY_RATE_LIMIT || HIGH),
    rateLimitPrefix: env.RATE_LIMIT_PREFIX || "@upstash/ratelimit",
    usersCacheTtlS: int("USERS_CACHE_TTL_S", 300, 1, 86400),
    usersCacheNegativeTtlS: int("USERS_CACHE_NEGATIVE_TTL_S", 5, 0, 86400),
    notifyMaxPayloadBytes: int("NOTIFY_MAX_PAYLOAD_BYTES", 65536, 64, 1_048_576),
    notifyStreamMaxlen: int("NOTIFY_STREAM_MAXLEN", 10000, 1, 1e9),
    notifyRetentionS: int("NOTIFY_RETENTION_S", 7 * 86400, 1, 365 * 86400),
    notifyIdempotencyTtlS: int("NOTIFY_IDEMPOTENCY_TTL_S", 86400, 1, 30 * 86400),
    notifyPollTimeoutMs: int("NOTIFY_POLL_TIMEOUT_MS", 20000, 1, 55000),
    notifyPollConnections: int("NOTIFY_POLL_CONNECTIONS", 256, 1, 10000),
    argon2: {
      memoryCost: int("ARGON2_MEMORY_KIB", 19456, 1024, 4_194_304),
      timeCost: int("ARGON2_TIME_COST", 2, 1, 100),
      parallelism: 1,
    },
  };
}

/** The primary fixes a random secret for all workers when none is given. */
export function ensureSecret(env = process.env) {
  if (env.SESSION_SECRET || env.SESSION_SECRETS) return false;
  env.SESSION_SECRET = randomBytes(32).toString("base64url");
  return true;
}
