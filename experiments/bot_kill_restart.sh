#!/usr/bin/env bash
# Durability check (not a test): start `issue-labeler serve` in dry-run, send N signed
# issues.opened deliveries, kill -9 the server while the worker is busy, restart it, and
# count: every delivery done once, no issue decided twice. Uses 127.0.0.1 only.
#   experiments/bot_kill_restart.sh [N] [seconds before the kill]
# The model is the default (set ISSUE_LABELER_BUNDLE for a trained bundle).
set -euo pipefail
N=${1:-30}; WAIT=${2:-8}; PORT=${PORT:-8770}
ROOT=$(cd "$(dirname "$0")/.." && pwd); PY=${PYTHON:-python}
DIR=$(mktemp -d); cd "$DIR"
export GITHUB_WEBHOOK_SECRET=kill-test PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
export ISSUE_LABELER_DATABASE_URL=sqlite:///$DIR/store.sqlite3 ISSUE_LABELER_QUEUE_URL=sqlite:///$DIR/queue.sqlite3
unset GITHUB_TOKEN GITHUB_APP_ID GITHUB_PRIVATE_KEY
count() { $PY -c "import sqlite3; print(sqlite3.connect('store.sqlite3').execute(\"$1\").fetchall())"; }
$PY -m bot.cli serve --port "$PORT" --log-level WARNING > serve1.log 2>&1 & PID=$!
for _ in $(seq 1 120); do curl -sf "localhost:$PORT/healthz" >/dev/null && break; sleep 0.5; done
$PY - "$N" "$PORT" <<'P'
import sys, uuid, requests
from bot.cli import example_delivery
n, port = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    p = {"action": "opened", "issue": {"number": i, "title": f"Crash {uuid.uuid4().hex[:6]} reading file {i}",
         "body": None, "user": {"login": "u", "type": "User"}, "labels": []},
         "repository": {"full_name": "kill/test"}, "sender": {"login": "u"}}
    h, b = example_delivery("kill-test", p, delivery_id=f"kill-{i}")
    assert requests.post(f"http://127.0.0.1:{port}/webhook", data=b, headers=h).status_code == 202
print(f"sent {n}")
P
sleep "$WAIT"; kill -9 $PID; wait $PID 2>/dev/null || true
echo "after kill -9: $(count 'select status, count(*) from deliveries group by status')"
$PY -m bot.cli serve --port "$PORT" --log-level WARNING > serve2.log 2>&1 & PID=$!
for _ in $(seq 1 300); do
  [ "$(count "select count(*) from deliveries where status != 'done'")" = "[(0,)]" ] && break; sleep 1; done
kill -INT $PID; wait $PID || true
echo "after restart: $(count 'select status, count(*) from deliveries group by status')"
echo "issues decided more than once: $(count 'select count(*) from (select issue_number from predictions group by issue_number having count(*) > 1)')"
echo "attempts: $(count 'select attempts, count(*) from deliveries group by attempts')"
