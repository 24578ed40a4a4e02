#!/usr/bin/env bash
# Known vulnerabilities in the locked dependencies: every package uv.lock pins (the runtime, every
# extra, the dev group), exported from the lockfile as exact pins and checked by pip-audit against
# PyPI's advisory feed (the PyPA advisory database, per release). Where that feed cannot be reached
# but PyPI's project JSON can, scripts/audit_newest.py audits the pins that are their project's
# newest release from it and names the others as not audited.
#
#   bash scripts/audit.sh                   # audit uv.lock
#   bash scripts/audit.sh --from-json FILE  # judge a pip-audit JSON report already made (no network)
#   bash scripts/audit.sh --ci              # as `make test` runs it: status 3 (not done) warns, exits 0
#   AUDIT_REQUIREMENTS=FILE                 # audit these pins instead of uv.lock's (the tests)
#   AUDIT_PYPI_DIR=DIR                      # the fallback reads DIR/NAME.json, not PyPI (the tests)
#
# Exit status: 0 nothing known, or only what scripts/audit-ignore.txt accepts; 1 a known
# vulnerability (also when other packages could not be audited); 2 the ignore list is malformed or
# an entry has expired; 3 the audit could not be done, or not for every package (the advisory feed
# unreachable, a package it could not look up): never a pass.
# How vulnerabilities without a fix are handled: docs/security.md#supply-chain.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--ci" ]; then  # `make test`: a finding fails; an audit that could not be done warns
  shift
  bash "$0" "$@"
  code=$?
  if [ "$code" -eq 3 ]; then
    echo "audit: ************************************************************************" >&2
    echo "audit: AUDIT NOT DONE for every package: the advisory feed could not be reached (see above)" >&2
    echo "audit: and the packages named above were not audited; the tests run on without them. Run" >&2
    echo "audit: 'bash scripts/audit.sh' where PyPI's per-release JSON API is reachable." >&2
    echo "audit: ************************************************************************" >&2
    exit 0
  fi
  exit "$code"
fi

IGNORE_FILE=${AUDIT_IGNORE_FILE:-scripts/audit-ignore.txt}
PYTHON=(uv run --frozen --no-sync python)
command -v uv >/dev/null || PYTHON=(python3)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${1:-}" = "--from-json" ]; then
  [ -f "${2:-}" ] || { echo "audit: no report at '${2:-}'" >&2; exit 3; }
  cp "$2" "$work/report.json"
elif [ -n "${AUDIT_REQUIREMENTS:-}" ]; then
  cp "$AUDIT_REQUIREMENTS" "$work/requirements.txt"
else
  if ! uv export --frozen --all-extras --all-groups --no-hashes --no-emit-project --no-header \
      --format requirements-txt -o "$work/requirements.txt" >"$work/export.log" 2>&1; then
    cat "$work/export.log" >&2
    echo "audit: FAILED: could not export the locked dependencies from uv.lock" >&2
    exit 3
  fi
fi
if [ "${1:-}" != "--from-json" ]; then
  echo "audit: $(grep -c "==" "$work/requirements.txt") pinned packages (uv.lock: every extra and group), pip-audit against PyPI"
  # --no-deps --disable-pip: the pins are the whole set, nothing is resolved or installed;
  # --strict: a package that cannot be looked up fails the audit instead of being skipped.
  uv run --frozen --no-sync pip-audit -r "$work/requirements.txt" --no-deps --disable-pip --strict \
    --progress-spinner off --timeout 30 --format json --output "$work/report.json" 2>"$work/pip-audit.log"
  code=$?
  if [ ! -s "$work/report.json" ]; then  # pip-audit stops before writing when it could not audit
    grep -v -e 'encouraged to fully hash' -e 'pip-compile' "$work/pip-audit.log" | tail -n 3 >&2
    echo "audit: pip-audit could not ask its feed about every locked package (exit $code); falling back to" \
         "PyPI's project JSON, which covers the packages locked at their newest release" >&2
    if ! "${PYTHON[@]}" scripts/audit_newest.py "$work/requirements.txt" "$work/report.json" \
        ${AUDIT_PYPI_DIR:+--from-dir "$AUDIT_PYPI_DIR"} || [ ! -s "$work/report.json" ]; then
      echo "audit: FAILED: neither pip-audit's feed nor PyPI's project JSON answered; nothing was audited," \
           "so this is not a pass" >&2
      exit 3
    fi
  fi
fi

"${PYTHON[@]}" - "$work/report.json" "$IGNORE_FILE" <<'PY'
"""Judge pip-audit's JSON report against the ignore list; print what was found."""
import datetime
import json
import re
import sys

report_path, ignore_path = sys.argv[1], sys.argv[2]
today = datetime.date.today()
LINE = re.compile(r"^(?P<id>\S+)\s+(?P<package>\S+)\s+reviewed=(?P<reviewed>\d{4}-\d{2}-\d{2})\s+"
                  r"expires=(?P<expires>\d{4}-\d{2}-\d{2})\s+(?P<reason>\S.{9,})$")

ignores, bad = {}, []
try:
    lines = open(ignore_path, encoding="utf-8").read().splitlines()
except FileNotFoundError:
    lines = []
for n, line in enumerate(lines, 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    m = LINE.match(line)
    if m is None:
        bad.append(f"{ignore_path}:{n}: not `ID PACKAGE reviewed=YYYY-MM-DD expires=YYYY-MM-DD REASON`: {line}")
        continue
    expires = datetime.date.fromisoformat(m["expires"])
    reviewed = datetime.date.fromisoformat(m["reviewed"])
    if expires < today:
        bad.append(f"{ignore_path}:{n}: {m['id']} ({m['package']}) expired on {expires}: review it again")
    elif (expires - reviewed).days > 180:
        bad.append(f"{ignore_path}:{n}: {m['id']}: an acceptance lasts at most 180 days from its review")
    ignores[m["id"]] = m
if bad:
    print("\n".join(bad), file=sys.stderr)
    print("audit: FAILED: the ignore list needs attention (docs/security.md#supply-chain)", file=sys.stderr)
    sys.exit(2)

try:
    report = json.load(open(report_path, encoding="utf-8"))
    deps = report["dependencies"]
except (OSError, ValueError, KeyError, TypeError) as exc:
    print(f"audit: FAILED: pip-audit's report is unreadable ({exc}); nothing was audited", file=sys.stderr)
    sys.exit(3)

skipped = [d for d in deps if d.get("skip_reason")]
found, accepted, used = [], [], set()
for d in deps:
    for v in d.get("vulns", []):
        names = [v["id"], *v.get("aliases", [])]
        hit = next((ignores[i] for i in names if i in ignores and ignores[i]["package"] == d["name"]), None)
        row = (d["name"], d["version"], v["id"], ",".join(v.get("aliases", [])) or "-",
               ",".join(v.get("fix_versions", [])) or "no fix")
        if hit is None:
            found.append(row)
        else:
            accepted.append((*row, hit["expires"]))
            used.add(hit["id"])

for i, m in ignores.items():
    if i not in used:
        print(f"audit: note: {ignore_path} accepts {i} ({m['package']}), which no locked package has any more:"
              " remove the entry", file=sys.stderr)
for row in accepted:
    print("audit: accepted until {5}: {0} {1} {2} ({3}), fix: {4}".format(*row))
for d in skipped:
    print(f"audit: not audited: {d['name']}: {d['skip_reason']}", file=sys.stderr)
if found:
    print(f"audit: FAILED: {len(found)} known vulnerabilit{'y' if len(found) == 1 else 'ies'}:", file=sys.stderr)
    for row in found:
        print("  {0} {1}: {2} (aliases {3}); fixed in: {4}".format(*row), file=sys.stderr)
    print("Upgrade (uv lock --upgrade-package NAME), or, only when no fix can be taken, accept it in "
          f"{ignore_path} with a reason and an expiry (docs/security.md#supply-chain).", file=sys.stderr)
    if skipped:
        print(f"audit: and {len(skipped)} package(s) could not be audited (above)", file=sys.stderr)
    sys.exit(1)
if skipped:
    print(f"audit: FAILED: {len(skipped)} of {len(deps)} package(s) could not be audited (above); "
          f"{len(deps) - len(skipped)} were, with nothing known" + (f" ({len(accepted)} accepted)" if accepted else ""),
          file=sys.stderr)
    sys.exit(3)
print(f"audit: no known vulnerabilities in {len(deps)} packages" + (f" ({len(accepted)} accepted)" if accepted else ""))
PY
