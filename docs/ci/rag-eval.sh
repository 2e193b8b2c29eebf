#!/usr/bin/env bash
# The evaluation step of docs/ci/rag-eval.yml (docs/ci.md), runnable anywhere from the
# repository's root after `make setup`:
#
#   1. start the service with `make run`'s command (`rag serve --host HOST --port PORT`, an
#      index built by an older version rebuilt from the data folder),
#   2. wait for GET /readyz,
#   3. evaluate the running service over HTTP with the regression gate, writing JUnit XML and
#      a Markdown summary,
#   4. publish the summary to $GITHUB_STEP_SUMMARY when it is set (GitHub Actions),
#   5. stop the service and exit with the evaluation's code: 0 passed, 1 regression,
#      2 usage or input error (a service that never became ready also exits 2).
#
# Settings (environment): RAG (the rag command, default .venv/bin/rag), HOST, PORT
# (default 127.0.0.1:8000, as `make run`), EVAL_OUT (folder for junit.xml, summary.md,
# report.json and server.log; default var/eval), EVAL_QUESTIONS (default eval/questions.jsonl),
# READY_TIMEOUT (seconds, default 600), EVAL_ARGS (more options for `rag eval check`, e.g.
# "--mode hybrid"); arguments to this script are passed on too. The service reads its own
# RAG_* settings (RAG_DATA_DIR, RAG_INDEX_DIR, RAG_ASK_RATE_LIMIT, ...) from the environment,
# and the evaluator sends `Authorization: Bearer $RAG_EVAL_TOKEN` when that is set.
# tests/test_eval_ci.py runs this script as the workflow does, so the example cannot rot.
set -euo pipefail

RAG="${RAG:-.venv/bin/rag}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
EVAL_OUT="${EVAL_OUT:-var/eval}"
EVAL_QUESTIONS="${EVAL_QUESTIONS:-eval/questions.jsonl}"
READY_TIMEOUT="${READY_TIMEOUT:-600}"
URL="http://${HOST}:${PORT}"

mkdir -p "$EVAL_OUT"

# 1. The service, started with `make run`'s command (Makefile: `run`).
RAG_REBUILD_STALE_INDEX=true "$RAG" serve --host "$HOST" --port "$PORT" >"$EVAL_OUT/server.log" 2>&1 &
server=$!
stop_server() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap stop_server EXIT

# 2. Ready when GET /readyz answers 200 (the model and index are loaded; the first start
#    builds the index from the articles).
ready=""
for _ in $(seq "$READY_TIMEOUT"); do
  if curl -fsS "$URL/readyz" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  if ! kill -0 "$server" 2>/dev/null; then
    break
  fi
  sleep 1
done
if [ -z "$ready" ]; then
  echo "error: the service at $URL did not become ready; its log:" >&2
  tail -n 40 "$EVAL_OUT/server.log" >&2
  exit 2
fi
curl -fsS "$URL/readyz"
echo

# 3. The evaluation of the running service, gated against the committed baseline.
status=0
# shellcheck disable=SC2086  # EVAL_ARGS is a list of options
"$RAG" eval check --url "$URL" --questions "$EVAL_QUESTIONS" \
  --junit "$EVAL_OUT/junit.xml" --summary "$EVAL_OUT/summary.md" \
  --report "$EVAL_OUT/report.json" --quiet ${EVAL_ARGS:-} "$@" || status=$?

# 4. The summary, where GitHub Actions shows it (the workflow also comments it on the PR).
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$EVAL_OUT/summary.md" ]; then
  cat "$EVAL_OUT/summary.md" >>"$GITHUB_STEP_SUMMARY"
fi

# 5. The server is stopped by the trap; the step fails on a regression or an error.
exit "$status"
