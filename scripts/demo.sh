#!/usr/bin/env bash
# Set up everything, then run the agent on the bundled default config
# (conf/logferry.conf: spool and output under ./var, file sink, no AWS),
# append a few sample records and show them delivered.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
bin=build/logferry
"$bin" check -c conf/logferry.conf --module-dir build/sinks
"$bin" run -c conf/logferry.conf --module-dir build/sinks &
agent=$!
trap 'kill -TERM $agent 2>/dev/null; wait $agent 2>/dev/null || true' EXIT
models=(anthropic.claude-3-haiku-20240307-v1:0 amazon.titan-text-express-v1 meta.llama3-8b-instruct-v1:0)
for i in 1 2 3 4 5; do
  "$bin" emit -c conf/logferry.conf --module-dir build/sinks \
    --tenant_id "tenant-$i" --account_id "11111111111$i" --app demo \
    --region us-east-1 --model_id "${models[$((i % 3))]}" --operation Converse \
    --input_tokens $((100 * i)) --output_tokens $((20 * i)) --latency_ms $((300 + i)) \
    --status ok --prompt_text "What is the capital of France? ($i)"
done
out=var/out/records.ndjson
for _ in $(seq 1 50); do
  [ -f "$out" ] && [ "$(wc -l < "$out")" -ge 5 ] && break
  sleep 0.1
done
echo "---- delivered to $out ----"
tail -n 5 "$out"
echo "---- logferry status ----"
"$bin" status -c conf/logferry.conf --module-dir build/sinks
