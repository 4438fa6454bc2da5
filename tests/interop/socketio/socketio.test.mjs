// Spindle's notify publish with `socketio_room` reaches Socket.IO 4 servers
// that use @socket.io/redis-adapter, and its packet is byte for byte what
// @socket.io/redis-emitter (notepack.io) publishes for the same emit; a
// user's emit reaches only the rooms the allow-list names.
//
// run.sh provides: SPINDLE_URL (the app host, real spin.toml, users allowed
// the rooms team:*), REDIS_URL (the Redis both share) and SPINDLE_API_KEY
// (accepted by notify).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { once } from "node:events";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { createAdapter } from "@socket.io/redis-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";
import notepack from "notepack.io";

const { SPINDLE_URL, REDIS_URL, SPINDLE_API_KEY } = process.env;
assert.ok(SPINDLE_URL && REDIS_URL && SPINDLE_API_KEY, "run through run.sh");

const closers = [];

/** A Socket.IO server on the shared Redis; clients join the room in their query. */
async function socketServer() {
  const pub = createClient({ url: REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = createServer();
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub) });
  io.on("connection", (socket) => {
    const room = socket.handshake.query.room;
    if (typeof room === "string" && room) socket.join(room);
  });
  httpServer.listen(0, "127.0.0.1");
  await once(httpServer, "listening");
  closers.push(async () => {
    io.close();
    await Promise.allSettled([pub.quit(), sub.quit()]);
  });
  return httpServer.address().port;
}

async function client(port, room) {
  const socket = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], query: { room }, reconnection: false });
  closers.push(async () => socket.close());
  await once(socket, "connect");
  return socket;
}

/** Resolves with the args of the first `event`, or null after `ms`. */
function next(socket, event, ms = 5000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** POSTs raw JSON text to /notify/publish as `auth` (headers), so the data's
 * member order is exactly this text's; returns status, content type and body. */
async function publishAs(auth, text) {
  const r = await fetch(`${SPINDLE_URL}/notify/publish`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: text,
  });
  return { status: r.status, type: r.headers.get("content-type"), body: await r.json() };
}

/** Publishes with the API key, which may emit to every room; expects 201. */
async function publish(text) {
  const r = await publishAs({ "x-api-key": SPINDLE_API_KEY }, text);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

/** A freshly registered user's session cookie. */
async function userCookie() {
  const creds = JSON.stringify({ username: "u" + Math.random().toString(36).slice(2, 12), password: "interop password" });
  const post = (path) => fetch(SPINDLE_URL + path, { method: "POST", headers: { "content-type": "application/json" }, body: creds });
  const reg = await post("/auth/register");
  assert.equal(reg.status, 201, await reg.text());
  const login = await post("/auth/login");
  assert.equal(login.status, 200, await login.text());
  return login.headers.getSetCookie().find((c) => c.startsWith("connect.sid=")).split(";")[0];
}

let ports;
before(async () => {
  ports = [await socketServer(), await socketServer()];
});

after(async () => {
  for (const close of closers.reverse()) await close();
});

test("a Spindle publish reaches the room's clients on every Socket.IO server", async () => {
  const [a1, a2, b1, b2] = await Promise.all([
    client(ports[0], "room1"),
    client(ports[1], "room1"),
    client(ports[0], "lobby"),
    client(ports[1], "lobby"),
  ]);
  const data = { text: "hello from Spindle", n: 42, nested: { ok: true, list: [1, 2.5, null] } };
  const got = [next(a1, "message"), next(a2, "message"), next(b1, "message", 800), next(b2, "message", 800)];
  const published = await publish(JSON.stringify({ topic: "chat", event: "message", data, socketio_room: "room1" }));
  const [r1, r2, other1, other2] = await Promise.all(got);
  assert.deepEqual(r1, [data], "client on server 1");
  assert.deepEqual(r2, [data], "client on server 2");
  assert.equal(other1, null, "not in the room");
  assert.equal(other2, null, "not in the room");

  // The same event is in Spindle's own stream, for pollers and SSE.
  const poll = await fetch(`${SPINDLE_URL}/notify/poll?topic=chat&after=0&wait_ms=0`, {
    headers: { "x-api-key": SPINDLE_API_KEY },
  }).then((r) => r.json());
  assert.equal(poll.events.at(-1).id, published.id);
  assert.deepEqual(poll.events.at(-1).data, data);
});

test("Spindle's packet equals @socket.io/redis-emitter's, byte for byte", async () => {
  // Member order, array-index keys, JS number semantics (1.0, 1e3, -0, 2^53+1,
  // past ±2^32), long strings, astral characters, 16+ element arrays and maps.
  const long = "x".repeat(300);
  const map16 = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]));
  const dataText =
    `{"b":1,"10":"ten","2":[1.0,-5,1e3,0.1,-0.0,4294967296,-2147483649,9007199254740993,-33,255,65536],` +
    `"s":"h\u00e9llo \ud83d\ude00","nested":{"t":true,"f":false,"n":null,"e":{},"a":[]},` +
    `"long":"${long}","arr":${JSON.stringify(Array.from({ length: 20 }, (_, i) => i * 1000))},` +
    `"map16":${JSON.stringify(map16)},"a":"last"}`;
  const room = "vectors";
  const sub = createClient({ url: REDIS_URL });
  await sub.connect();
  closers.push(async () => sub.quit());
  const packets = [];
  await sub.subscribe(`socket.io#/#${room}#`, (msg) => packets.push(Buffer.from(msg)), true);

  await publish(`{"topic":"vectors","event":"update","socketio_room":"${room}","data":${dataText}}`);
  const pub = createClient({ url: REDIS_URL });
  await pub.connect();
  closers.push(async () => pub.quit());
  new Emitter(pub).to(room).emit("update", JSON.parse(dataText));

  const deadline = Date.now() + 5000;
  while (packets.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(packets.length, 2, "one packet from Spindle, one from the emitter");
  const [spindle, emitter] = packets;
  assert.equal(spindle.toString("hex"), emitter.toString("hex"));
  // And what both carry, decoded.
  const [uid, packet, opts] = notepack.decode(spindle);
  assert.equal(uid, "emitter");
  // (-0 travels as the integer 0, as notepack encodes it.)
  const plain = JSON.parse(JSON.stringify(JSON.parse(dataText)));
  assert.deepEqual(packet, { type: 2, data: ["update", plain], nsp: "/" });
  assert.deepEqual(opts, { rooms: [room], flags: {}, except: [] });

  // The library's fixed test vector, checked against the emitter itself.
  const vector = [];
  new Emitter({ publish: (channel, msg) => vector.push([channel, Buffer.from(msg)]) }).to("room1").emit("hello", "world");
  assert.equal(vector[0][0], "socket.io#/#room1#");
  assert.equal(
    vector[0][1].toString("hex"),
    "93a7656d697474657283a47479706502a46461746192a568656c6c6fa5776f726c64a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490",
  );
});

test("a user may emit only to the rooms on notify_socketio_rooms; an API key to any", async () => {
  // run.sh: notify_socketio_rooms=team:*, notify_socketio_rooms_keys at its default (*).
  const [admin1, admin2, team] = await Promise.all([client(ports[0], "admins"), client(ports[1], "admins"), client(ports[0], "team:blue")]);
  // Every packet on the admins room's adapter channel, whoever sends it.
  const sub = createClient({ url: REDIS_URL });
  await sub.connect();
  closers.push(async () => sub.quit());
  const packets = [];
  await sub.subscribe("socket.io#/#admins#", (msg) => packets.push(Buffer.from(msg)), true);
  const user = { cookie: await userCookie() };
  const got1 = next(admin1, "promote");
  const got2 = next(admin2, "promote");

  const refused = await publishAs(user, JSON.stringify({ topic: "chat", event: "promote", data: { from: "user" }, socketio_room: "admins" }));
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  assert.equal(refused.type, "application/problem+json");
  assert.match(refused.body.detail, /admins/);

  // A room on the users' list: delivered.
  const teamGot = next(team, "standup");
  const allowed = await publishAs(user, JSON.stringify({ topic: "chat", event: "standup", data: { from: "user" }, socketio_room: "team:blue" }));
  assert.equal(allowed.status, 201, JSON.stringify(allowed.body));
  assert.deepEqual(await teamGot, [{ from: "user" }]);

  // The API key's emit to admins arrives, and is the first thing the admins
  // see: the refused one never reached the room.
  await publish(JSON.stringify({ topic: "chat", event: "promote", data: { from: "key" }, socketio_room: "admins" }));
  assert.deepEqual(await got1, [{ from: "key" }], "server 1");
  assert.deepEqual(await got2, [{ from: "key" }], "server 2");
  const deadline = Date.now() + 2000;
  while (packets.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(packets.length, 1, "one packet on the admins channel: the API key's");
  assert.deepEqual(notepack.decode(packets[0])[1].data, ["promote", { from: "key" }]);

  // And the refused publish is not in the topic's stream either.
  const poll = await fetch(`${SPINDLE_URL}/notify/poll?topic=chat&after=0&wait_ms=0`, { headers: { "x-api-key": SPINDLE_API_KEY } }).then((r) => r.json());
  assert.deepEqual(poll.events.filter((e) => e.event === "promote").map((e) => e.data), [{ from: "key" }]);
});
