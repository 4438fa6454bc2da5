#!/usr/bin/env python3
"""Sums a callgrind dump (bench/profile/run.sh): instructions (Ir) per
request in all, in the guest's compiled code (valgrind's `???` object, named
through wasmtime's perf map), and in each host function.

    cgsum.py DUMP REQUESTS [PERF_MAP] [--top N] [--json] [--meta k=v...]

The guest's calls into the host are counted where the host has symbols
(the runner; Spin's binary is stripped): the PERF_MAP is then present.
"""
import bisect, json, os, re, subprocess, sys
from collections import defaultdict

def parse(path):
    names = {"ob": {}, "fl": {}, "fn": {}}
    def name(kind, v):
        m = re.match(r"\((\d+)\)(?: (.*))?", v)
        if not m:
            return v
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")
    self_cost = defaultdict(int)   # (ob, fn) -> Ir
    calls = defaultdict(int)       # (caller ob, caller fn, callee ob, callee fn) -> count
    ob = fn = cob = cfn = None
    total = 0
    pending_call = None
    for line in open(path):
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("summary:"):
            total = int(line.split()[1])
            continue
        key, _, val = line.partition("=")
        if key in ("ob", "fn", "fl", "fi", "fe", "cob", "cfn", "cfi", "cfl", "calls") and _:
            if key == "ob": ob = name("ob", val); cob = None
            elif key == "fn": fn = name("fn", val); cob = None
            elif key in ("fl", "fi", "fe", "cfi", "cfl"): name("fl", val)
            elif key == "cob": cob = name("ob", val)
            elif key == "cfn": cfn = name("fn", val)
            elif key == "calls":
                pending_call = int(val.split()[0])
            continue
        if line[0].isdigit() or line[0] in "+-*":
            parts = line.split()
            if pending_call is not None:
                calls[(ob, fn, cob or ob, cfn)] += pending_call
                pending_call = None
                cob = None
            elif len(parts) > 1:
                self_cost[(ob, fn)] += int(parts[1])
    return total, self_cost, calls

def demangle(labels):
    """wasm[0]::function[7]::_ZN...E -> the Rust path, through c++filt (binutils) when present."""
    parts = [l.rsplit("::", 1) if "::_" in l else [l, ""] for l in labels]
    try:
        out = subprocess.run(["c++filt"], input="\n".join(p[1] for p in parts), capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return labels
    return [f"{p[0]}::{re.sub(r'::h[0-9a-f]{16}$', '', d)}" if p[1] else p[0] for p, d in zip(parts, out)]

def perf_map(path):
    starts, ends, labels = [], [], []
    if path:
        for line in open(path):
            a, n, label = line.split(" ", 2)
            starts.append(int(a, 16)); ends.append(int(a, 16) + int(n, 16)); labels.append(label.strip())
    labels = demangle(labels)
    order = sorted(range(len(starts)), key=starts.__getitem__)
    return [starts[i] for i in order], [ends[i] for i in order], [labels[i] for i in order]

def main():
    argv = sys.argv[1:]
    as_json = "--json" in argv
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 15
    meta = {}
    if "--meta" in argv:
        meta = dict(kv.split("=", 1) for kv in argv[argv.index("--meta") + 1:])
        argv = argv[:argv.index("--meta")]
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and not (i and argv[i - 1] == "--top")]
    path, n = args[0], int(args[1])
    starts, ends, labels = perf_map(args[2] if len(args) > 2 and os.path.exists(args[2]) else None)
    total, self_cost, calls = parse(path)

    def jit_name(fn):
        a = int(fn.split("'")[0], 16) if fn.startswith("0x") else -1
        i = bisect.bisect_right(starts, a) - 1
        return labels[i] if i >= 0 and a < ends[i] else "(guest)"

    guest, host = defaultdict(int), defaultdict(int)
    for (ob, fn), c in self_cost.items():
        (guest if ob == "???" else host)[jit_name(fn) if ob == "???" else fn] += c
    reset = sum(c for f, c in host.items() if f.startswith("__memset"))
    g = sum(guest.values())
    # The guest's calls into the host: component imports (lowered host
    # functions and resource drops), and the variable reads among them.
    imports = variables = 0
    for (ob, fn, cob, cfn), k in calls.items():
        if ob == "???" and cob != "???" and ("HostFn::cabi_entrypoint" in cfn or "trampolines::resource_drop" in cfn):
            imports += k
        if (cfn or "").endswith("spin2_0_0::variables::add_to_linker_instance::{{closure}}::{{closure}}"):
            variables += k
    per = lambda c: c / n
    out = dict(meta, requests=n, ir=per(total), guest=per(g), reset=per(reset), host_ir=per(total - g - reset),
               imports=per(imports) if starts else None, variables=per(variables) if starts else None,
               top_guest=[(f, per(c)) for f, c in sorted(guest.items(), key=lambda x: -x[1])[:top]],
               top_host=[(f[:160], per(c)) for f, c in sorted(host.items(), key=lambda x: -x[1])[:top]])
    if as_json:
        print(json.dumps(out))
        return
    print(f"Ir/request {out['ir']:,.0f}: guest {out['guest']:,.0f}, host {out['host_ir']:,.0f}, memory reset {out['reset']:,.0f}")
    if starts:
        print(f"guest->host import calls/request {out['imports']:.1f} (variables.get {out['variables']:.1f})")
    for title, rows in (("guest", out["top_guest"]), ("host", out["top_host"])):
        print(f"top {title} functions (self Ir/request):")
        for f, c in rows:
            print(f"  {c:>10,.0f}  {f}")

main()
