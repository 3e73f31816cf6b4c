package spawner

import (
	"net/http"
	"strconv"
	"strings"
)

// The marker: environment variables every worker is started with. They make
// a worker recognisable in the process table after an agent restart and
// carry what list reports, so the agent needs no registry.
const (
	markerPrefix  = "HIVE_AGENT_"
	envHive       = markerPrefix + "HIVE_ID"
	envWorker     = markerPrefix + "WORKER_ID"
	envJob        = markerPrefix + "JOB_ID"
	envCommand    = markerPrefix + "COMMAND_ID"
	envModel      = markerPrefix + "MODEL_ID"
	envDevice     = markerPrefix + "DEVICE"
	envWorkerType = markerPrefix + "WORKER_TYPE"
	envPort       = markerPrefix + "PORT"
	envBinary     = markerPrefix + "BINARY_PATH"
	envLog        = markerPrefix + "LOG_PATH"
	envHealthPath = markerPrefix + "HEALTH_PATH"
	envReady      = markerPrefix + "READY_STATUS"
	envRestart    = markerPrefix + "RESTART"
	envMaxRestart = markerPrefix + "MAX_RESTARTS"
	envRestarts   = markerPrefix + "RESTARTS"
	envQueen      = markerPrefix + "QUEEN_URL"
)

// marker is the parsed marker of one process.
type marker map[string]string

func markerEnv(w Worker) []string {
	return []string{
		envHive + "=" + w.HiveID,
		envWorker + "=" + w.WorkerID,
		envJob + "=" + w.JobID,
		envCommand + "=" + w.CommandID,
		envModel + "=" + w.ModelID,
		envDevice + "=" + w.Device,
		envWorkerType + "=" + string(w.WorkerType),
		envPort + "=" + strconv.Itoa(w.Port),
		envBinary + "=" + w.BinaryPath,
		envLog + "=" + w.LogPath,
		envHealthPath + "=" + w.HealthPath,
		envReady + "=" + strconv.Itoa(w.ReadyStatus),
		envRestart + "=" + restartName(w.Restart),
		envMaxRestart + "=" + strconv.Itoa(w.Restart.Max),
		envRestarts + "=" + strconv.Itoa(w.Restarts),
		envQueen + "=" + w.QueenURL,
	}
}

func restartName(p RestartPolicy) string {
	if p.OnFailure {
		return "on-failure"
	}
	return "no"
}

// workerEnv is the agent's environment without its configuration: no
// NATS_* (a URL may carry a token, a path names credentials) and no HIVE_*
// (the agent's settings, and marker variables it may have inherited, so a
// worker never carries two markers). The marker is added after it.
func workerEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "HIVE_") {
			out = append(out, kv)
		}
	}
	return out
}

// parseMarker returns the marker in env, or nil when env has none.
func parseMarker(env []string) marker {
	var m marker
	for _, kv := range env {
		if !strings.HasPrefix(kv, markerPrefix) {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if m == nil {
			m = marker{}
		}
		m[k] = v
	}
	if m[envHive] == "" || m[envWorker] == "" {
		return nil
	}
	return m
}

func (m marker) hive() string   { return m[envHive] }
func (m marker) worker() string { return m[envWorker] }

// apply fills w's fields from the marker.
func (m marker) apply(w *Worker) {
	w.HiveID = m[envHive]
	w.WorkerID = m[envWorker]
	w.JobID = m[envJob]
	w.CommandID = m[envCommand]
	w.ModelID = m[envModel]
	w.Device = m[envDevice]
	w.WorkerType = WorkerType(m[envWorkerType])
	w.Port, _ = strconv.Atoi(m[envPort])
	w.BinaryPath = m[envBinary]
	w.LogPath = m[envLog]
	// Workers of an agent that predates these keys were probed on /health
	// for 200.
	w.HealthPath = m[envHealthPath]
	if w.HealthPath == "" {
		w.HealthPath = "/health"
	}
	if w.ReadyStatus, _ = strconv.Atoi(m[envReady]); w.ReadyStatus == 0 {
		w.ReadyStatus = http.StatusOK
	}
	w.Restart.OnFailure = m[envRestart] == "on-failure"
	w.Restart.Max, _ = strconv.Atoi(m[envMaxRestart])
	w.Restarts, _ = strconv.Atoi(m[envRestarts])
	w.QueenURL = m[envQueen]
}

// is reports whether m is the marker of worker id worker of hive hive.
func (m marker) is(hive, worker string) bool {
	return m != nil && m.hive() == hive && m.worker() == worker
}
