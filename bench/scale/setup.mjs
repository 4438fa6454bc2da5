// Makes the accounts a benchmark run needs, through BASE (the load balancer):
//   BASE=http://127.0.0.1:8080 node bench/scale/setup.mjs <prefix> <count>
// Prints {"users":[{"id","username","cookie"}…]}; the first user is the
// one whose session /auth/me and publish+poll use, and whose profile the
// cached read gets.
import { account } from "./client.mjs";

const [prefix = "bench", count = "4"] = process.argv.slice(2);
const users = [];
for (let i = 0; i < Number(count); i++) users.push(await account(process.env.BASE, `${prefix}${i}`));
console.log(JSON.stringify({ users }));
