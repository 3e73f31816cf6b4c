#!/bin/sh
# health-load.sh: the agent's CPU and memory with N idle workers that it
# health-checks every INTERVAL (docs/day-two.md, "What health checks cost").
# Usage: scripts/health-load.sh [N] [INTERVAL] [SECONDS]
# Builds the agent and the test worker, starts the agent with an embedded
# NATS server on 127.0.0.1:24299, spawns N workers, waits a warm-up, then
# reads utime+stime and VmRSS of the agent from /proc over SECONDS.
set -eu
N=${1:-200}; INTERVAL=${2:-10s}; SECS=${3:-60}
dir=$(mktemp -d); trap 'kill $agent 2>/dev/null; sleep 1; rm -rf "$dir"' EXIT
go build -o "$dir/hive-agent" ./cmd/hive-agent
mkdir -p "$dir/workers"; go build -o "$dir/workers/cpu-llm-worker-rbee" ./internal/testworker
hive=load$$
"$dir/hive-agent" --hive-id $hive --worker-dir "$dir/workers" --log-dir "$dir/logs" --state-dir "$dir/state" \
  --nats-listen 127.0.0.1:24299 --jetstream off --port-range 20000-20999 --health-interval "$INTERVAL" \
  --log-level warn >"$dir/agent.log" 2>&1 &
agent=$!
S="-s nats://127.0.0.1:24299"
until "$dir/hive-agent" ls $S -H $hive >/dev/null 2>&1; do sleep 0.2; done
i=0; while [ $i -lt "$N" ]; do
  "$dir/hive-agent" spawn $S -H $hive -m m -d cpu --id "w$i" --wait exec >/dev/null 2>&1; i=$((i+1))
done
echo "spawned $("$dir/hive-agent" ls $S -H $hive | tail -n +2 | wc -l) workers; warming up 15s"
sleep 15
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$agent/stat; }
c0=$(cpu); t0=$(date +%s.%N); sleep "$SECS"; c1=$(cpu); t1=$(date +%s.%N)
echo "agent pid $agent: $(echo "$c0 $c1 $t0 $t1 $tck" | awk '{printf "CPU %.2f%% of one core over %.0f s (%d ticks)", ($2-$1)/$5/($4-$3)*100, $4-$3, $2-$1}')"
grep -E 'VmRSS|Threads' /proc/$agent/status | tr '\n' ' '; echo
echo "states: $("$dir/hive-agent" ls $S -H $hive | tail -n +2 | awk '{print $3}' | sort | uniq -c | tr '\n' ' ')"
"$dir/hive-agent" drain $S -H $hive --stop-workers >/dev/null 2>&1 || true
