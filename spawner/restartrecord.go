package spawner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee/hive-agent/internal/statefile"
)

// restartRecord is a pending restart on disk: written when a worker's
// backoff starts, removed when the restart was started or a delete
// cancelled it. It lets an agent that starts during the backoff (the
// earlier one was stopped or killed) honour the restart the exited event
// announced. It holds what Start needs: the rendered command, since a
// catalog type's templates may have changed since.
type restartRecord struct {
	WorkerID    string   `json:"worker_id"`
	JobID       string   `json:"job_id"`
	CommandID   string   `json:"command_id"`
	ModelID     string   `json:"model_id"`
	Device      string   `json:"device"`
	WorkerType  string   `json:"worker_type"`
	BinaryPath  string   `json:"binary_path"`
	Port        int      `json:"port"`
	QueenURL    string   `json:"queen_url"`
	Args        []string `json:"args"`
	Env         []string `json:"env"`
	HealthPath  string   `json:"health_path"`
	ReadyStatus int      `json:"ready_status"`
	MaxRestarts int      `json:"max_restarts"`
	// Restart is the restart that is due, DueMS when (ms since the epoch).
	Restart int   `json:"restart"`
	DueMS   int64 `json:"due_ms"`
}

// restartDir holds this hive's restart records, beside its logs.
func (s *Spawner) restartDir() string { return filepath.Join(s.LogDir(), "restarts") }

func (s *Spawner) recordPath(workerID string) string {
	return filepath.Join(s.restartDir(), workerID+".json")
}

// writeRecord persists the restart attempt of spec, due at due. Called
// with s.mu held, so it is ordered against removeRecord and resume.
func (s *Spawner) writeRecord(spec Spec, port, attempt int, due time.Time) error {
	args, env, err := spec.command(port)
	if err != nil {
		return err
	}
	r := restartRecord{WorkerID: spec.WorkerID, JobID: spec.JobID, CommandID: spec.CommandID, ModelID: spec.ModelID,
		Device: spec.Device.Raw, WorkerType: string(spec.WorkerType), BinaryPath: spec.BinaryPath, Port: port, QueenURL: spec.QueenURL,
		Args: args, Env: env, HealthPath: spec.HealthPath, ReadyStatus: spec.ReadyStatus, MaxRestarts: spec.Restart.Max,
		Restart: attempt, DueMS: due.UnixMilli()}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return statefile.Write(s.recordPath(spec.WorkerID), b)
}

// removeRecord removes the record of workerID; with attempt > 0 only when
// it is for that restart (a newer backoff may have replaced it). It
// reports whether a record was removed. Called with s.mu held.
func (s *Spawner) removeRecord(workerID string, attempt int) bool {
	p := s.recordPath(workerID)
	if attempt > 0 {
		if r, err := readRecord(p); err == nil && r.Restart != attempt {
			return false
		}
	}
	return os.Remove(p) == nil
}

func readRecord(path string) (restartRecord, error) {
	var r restartRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// spec turns a record back into what Start needs, or says why it cannot.
func (r restartRecord) spec(workerID string) (Spec, error) {
	if r.WorkerID != workerID {
		return Spec{}, fmt.Errorf("record names worker %q, its file %q", r.WorkerID, workerID)
	}
	if r.Restart < 1 || r.Port == 0 || r.BinaryPath == "" {
		return Spec{}, errors.New("record is incomplete (no restart number, port or binary)")
	}
	d, err := ParseDevice(r.Device)
	if err != nil {
		return Spec{}, fmt.Errorf("device: %w", err)
	}
	if !isExecutable(r.BinaryPath) {
		return Spec{}, fmt.Errorf("binary %s is gone or not executable", r.BinaryPath)
	}
	args, env := r.Args, r.Env
	return Spec{
		WorkerID: r.WorkerID, ModelID: r.ModelID, Device: d, BinaryPath: r.BinaryPath, Port: r.Port,
		QueenURL: r.QueenURL, JobID: r.JobID, CommandID: r.CommandID, WorkerType: WorkerType(r.WorkerType),
		Command:    func(int) ([]string, []string, error) { return args, env, nil },
		HealthPath: r.HealthPath, ReadyStatus: r.ReadyStatus,
		Restart: RestartPolicy{OnFailure: true, Max: r.MaxRestarts}, attempt: r.Restart,
	}, nil
}

// recordIDs lists the worker ids that have a restart record.
func (s *Spawner) recordIDs() []string {
	entries, err := os.ReadDir(s.restartDir())
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			ids = append(ids, id)
		}
	}
	return ids
}
