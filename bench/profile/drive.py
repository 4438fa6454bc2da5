#!/usr/bin/env python3
"""Sends one route's requests, one at a time over one keep-alive connection,
and fails on any unexpected status (bench/profile/run.sh).

    drive.py BASE ROUTE N      ROUTE: a name of ROUTES below, or a path to GET
Env: COOKIE (the session cookie), USER_ID (a user whose record is cached).
"""
import http.client, os, sys, urllib.parse

cookie = os.environ.get("COOKIE", "")
uid = os.environ.get("USER_ID", "1")
JSON = {"content-type": "application/json"}
# name: (method, path, headers, body, expected status); XFF marks a fresh
# X-Forwarded-For per request (a new client each time, as bench/scale/wrk/ping.lua).
ROUTES = {
    "ok": ("GET", "/ok", {}, None, 200),
    "get": ("GET", "/get", {}, None, 200),
    "healthz": ("GET", "/healthz", {}, None, 200),
    "me": ("GET", "/auth/me", {"cookie": cookie}, None, 200),
    "ping": ("GET", "/api/ping", {"XFF": ""}, None, 200),
    "user": ("GET", f"/users/{uid}", {}, None, 200),
    "404": ("GET", "/no/such/route", {}, None, 404),
    "405": ("DELETE", "/api/ping", {}, None, 405),
    "401": ("GET", "/auth/me", {}, None, 401),
    "400": ("POST", "/auth/login", JSON, b'{"username": ', 400),
    "openapi": ("GET", "/openapi.json", {}, None, 200),
    "console": ("GET", "/", {}, None, 200),
}

def main():
    base, route, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Any other ROUTE that is a path: GET it, expecting 200.
    method, path, headers, body, want = ROUTES[route] if route in ROUTES else ("GET", route, {}, None, 200)
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    for i in range(n):
        h = dict(headers)
        if "XFF" in h:
            del h["XFF"]
            h["x-forwarded-for"] = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != want:
            sys.exit(f"{route}: {method} {path} answered {resp.status}, expected {want}: {data[:300]!r}")
        if resp.getheader("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)

main()
