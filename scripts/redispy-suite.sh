#!/usr/bin/env bash
# redis-py's own command tests (tests/test_commands.py of a redis-py checkout)
# against a fresh redis-server and a fresh tenantkv, side by side: prints the
# tests that fail on tenantkv only. A development tool, as Redis's TCL suite
# (CI has no redis-py checkout); the checkout's tests need their own venv:
#   python3 -m venv /tmp/rpvenv && /tmp/rpvenv/bin/pip install -e <checkout> \
#       pytest pytest-asyncio pytest-timeout ujson numpy redis-entraid pybreaker aiohttp xxhash
# usage: scripts/redispy-suite.sh <redis-py checkout> <its venv python> [test file...]
set -u
checkout=$(cd "$1" && pwd); python=$2; shift 2
tests=${*:-tests/test_commands.py}
proj=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); rport=$((20000 + RANDOM % 5000)); tport=$((rport + 1))
trap 'kill $rpid $tpid 2>/dev/null; rm -rf "$work"' EXIT

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --enable-debug-command yes >"$work/redis.log" 2>&1 &
rpid=$!
# password-less dev mode: redis-py's tests run as the default user
( cd "$work" && TENANTKV_AUTH__DEFAULT_USER=nopass exec "$proj/.venv/bin/tenantkv-server" \
    --port "$tport" --bind 127.0.0.1 --dir "$work" --save '' ) >"$work/tenantkv.log" 2>&1 &
tpid=$!
for port in "$rport" "$tport"; do
  for _ in $(seq 100); do redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done

run() {   # $1 port, $2 output
  (cd "$checkout" && timeout 1200 "$python" -m pytest $tests -q -p no:cacheprovider -rfE \
      --timeout 60 --redis-url="redis://127.0.0.1:$1" >"$2" 2>&1)
  grep -E '^(FAILED|ERROR) ' "$2" | sed 's/ - .*//' | sort -u
}
run "$rport" "$work/redis.out" >"$work/redis.failed"
run "$tport" "$work/tenantkv.out" >"$work/tenantkv.failed"
echo "redis-server: $(tail -1 "$work/redis.out")"
echo "tenantkv:     $(tail -1 "$work/tenantkv.out")"
echo "failing on tenantkv only:"
comm -13 "$work/redis.failed" "$work/tenantkv.failed" | sed 's/^/  /'
