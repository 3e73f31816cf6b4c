#!/usr/bin/env bash
# gpu-check.sh: the GPU memory check of docs/gpus.md on a real NVIDIA machine,
# in under 3 minutes. It starts an agent (embedded NATS on 127.0.0.1:14222),
# spawns as a worker a real process that allocates GPU memory, checks that
# `ls` shows the worker's GPU memory and `hives --gpus` the GPU's, stops the
# worker and checks that the delete saw the memory released.
#
# Needs: Go (to build the agent), nvidia-smi, and python3 with PyTorch (CUDA
# build) or CuPy. Usage: scripts/gpu-check.sh [MiB to allocate, default 2048]
set -euo pipefail
MIB=${1:-2048}
cd "$(dirname "$0")/.."
say() { printf '== %s\n' "$*"; }
die() { printf 'gpu-check: %s\n' "$*" >&2; exit 1; }

command -v nvidia-smi >/dev/null || die "no nvidia-smi on PATH: this needs an NVIDIA GPU and its driver"
command -v go >/dev/null || die "no go on PATH: it builds the agent"
command -v python3 >/dev/null || die "no python3: the worker is a python process that allocates GPU memory"
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	LIB=torch
elif python3 -c 'import cupy' 2>/dev/null; then
	LIB=cupy
else
	die "python3 has neither PyTorch with CUDA nor CuPy: pip install torch (or cupy-cuda12x)"
fi
say "nvidia-smi"
nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,memory.free --format=csv,noheader,nounits

TMP=$(mktemp -d)
AGENT_PID=
cleanup() {
	[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
	echo "agent log: $TMP/agent.log"
}
trap cleanup EXIT
go build -o "$TMP/hive-agent" ./cmd/hive-agent
HA=("$TMP/hive-agent")
SERVER=nats://127.0.0.1:14222

# The worker: allocates MIB MiB on its (pinned) GPU, then serves /health.
cat >"$TMP/alloc.py" <<PY
import http.server, sys
port, mib, lib = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if lib == "torch":
    import torch
    buf = torch.empty(mib * 1024 * 1024, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
else:
    import cupy
    buf = cupy.zeros(mib * 1024 * 1024, dtype=cupy.uint8)
print(f"allocated {mib} MiB with {lib}", flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
cat >"$TMP/catalog.yaml" <<YAML
worker_types:
  gpu-alloc:
    binary: $(command -v python3)
    devices: [cuda]
    args: ["$TMP/alloc.py", "{port}", "$MIB", "$LIB"]
    health_path: /
    ready_timeout: 90s
YAML
"${HA[@]}" catalog check "$TMP/catalog.yaml"

say "starting the agent"
"${HA[@]}" --hive-id gpucheck --nats-listen 127.0.0.1:14222 --jetstream off --catalog "$TMP/catalog.yaml" \
	--log-dir "$TMP/logs" --vram-release-timeout 30s >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do grep -q "serving worker commands" "$TMP/agent.log" && break; sleep 0.1; done
grep -q "serving worker commands" "$TMP/agent.log" || die "the agent did not start; see $TMP/agent.log"
"${HA[@]}" hives --gpus -s "$SERVER"

say "spawning a worker that allocates $MIB MiB"
"${HA[@]}" spawn -s "$SERVER" -H gpucheck -m check -d cuda:0 --type gpu-alloc --id gpucheck-w1 --wait ready --min-free-vram "$MIB"
for _ in $(seq 60); do
	LS=$("${HA[@]}" ls -s "$SERVER" -H gpucheck)
	awk 'NR>1 && $NF != "-" && $(NF-1) !~ /^0/ {found=1} END {exit !found}' <<<"$LS" && break
	sleep 0.5
done
echo "$LS"
"${HA[@]}" hives --gpus -s "$SERVER"

say "stopping it"
OUT=$("${HA[@]}" stop -s "$SERVER" -H gpucheck gpucheck-w1)
echo "$OUT"
grep -q "gpu released: yes" <<<"$OUT" || die "the release was not seen (see the agent log for gpu.tainted)"
grep -E "GPU (released|tainted)" "$TMP/agent.log" || true
say "ok: the worker's GPU memory was seen, and its release after the stop"
