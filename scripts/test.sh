#!/usr/bin/env bash
# Install everything, run the whole test suite with a private redis-server on loopback, then build the docs site.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -e '.[dev]'

# Debian packages the suite needs: redis-server (the Redis tests), chromium (the timeline
# opened in a real headless browser)
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
workdir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$workdir" \
    --daemonize no --loglevel warning >"$workdir/redis.log" 2>&1 &
redis_pid=$!
cleanup() { kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; rm -rf "$workdir"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    sleep 0.05
done
redis-cli -p "$port" ping >/dev/null

export AGENTDIFF_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
python3 -m pytest "$@"

# the documentation site builds without a warning (broken links, pages missing from the nav)
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet --site-dir "$workdir/site"
