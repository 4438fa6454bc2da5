#!/usr/bin/env bash
# Checks the SpinKube manifests with no cluster:
#  1. spinapp.yaml and spinapp-worker.yaml against the SpinApp CRD's
#     OpenAPI schema (spinapp.schema.json, from spin-operator), with
#     check-jsonschema from PyPI (pinned in requirements.txt, installed into a
#     venv under target/): once as published, and once strict, with unknown
#     fields refused as the API server's strict field validation (kubectl's
#     default) refuses them, so a misspelt key fails here too;
#  2. every variable of spin.toml / spin-worker.toml is bound in its SpinApp,
#     none twice and none unknown, secret = true ones from a Secret
#     (valueFrom.secretKeyRef), the others as plain values.
# Exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/target/deploy-venv"
py="$venv/bin/python"

if ! cmp -s "$here/requirements.txt" "$venv/.requirements.txt" 2>/dev/null; then
  echo "check.sh: installing check-jsonschema into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.requirements.txt"
fi

manifests=("$here/spinapp.yaml" "$here/spinapp-worker.yaml")
strict="$venv/spinapp.strict.schema.json"

"$py" - "$here/spinapp.schema.json" "$strict" <<'PY'
import json, sys
schema = json.load(open(sys.argv[1]))
def close(node):
    if isinstance(node, dict):
        if (node.get("type") == "object" and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for v in node.values():
            close(v)
    elif isinstance(node, list):
        for v in node:
            close(v)
close(schema)
json.dump(schema, open(sys.argv[2], "w"))
PY

status=0
"$venv/bin/check-jsonschema" --schemafile "$here/spinapp.schema.json" "${manifests[@]}" || status=1
"$venv/bin/check-jsonschema" --schemafile "$strict" "${manifests[@]}" || status=1

"$py" - "$root" <<'PY' || status=1
import sys, tomllib
from ruamel.yaml import YAML
root = sys.argv[1]
pairs = [("spin.toml", "deploy/spinkube/spinapp.yaml"),
         ("spin-worker.toml", "deploy/spinkube/spinapp-worker.yaml")]
errors = []
for manifest, spinapp in pairs:
    declared = tomllib.load(open(f"{root}/{manifest}", "rb")).get("variables", {})
    doc = YAML(typ="safe").load(open(f"{root}/{spinapp}"))
    bound = {}
    for var in (doc.get("spec") or {}).get("variables") or []:
        name = var.get("name")
        if name in bound:
            errors.append(f"{spinapp}: {name} is bound twice")
        bound[name] = var
    for name, decl in declared.items():
        var = bound.get(name)
        if var is None:
            errors.append(f"{spinapp}: {manifest}'s variable {name} is not bound")
        elif decl.get("secret"):
            if "value" in var or "secretKeyRef" not in (var.get("valueFrom") or {}):
                errors.append(f"{spinapp}: {name} is secret = true: bind it with valueFrom.secretKeyRef, not a value")
        elif not isinstance(var.get("value"), str) or "valueFrom" in var:
            errors.append(f"{spinapp}: {name} is not secret: bind it with a plain string value")
    for name in bound:
        if name not in declared:
            errors.append(f"{spinapp}: {name} is not a variable of {manifest}")
    if not errors:
        print(f"ok -- {spinapp}: all {len(declared)} variables of {manifest} bound")
for e in errors:
    print("error:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

exit $status
