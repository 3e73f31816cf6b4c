package consumer

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/hive-agent/commands"
)

// stats are the agent's own counters, shown per endpoint by
// `nats micro stats hive-agent`: micro's built-in counters only see the
// hand-off of each command to its goroutine.
type stats struct {
	mu     sync.Mutex
	byKind map[string]uint64
	byCode map[string]map[string]uint64 // kind -> code -> count
	// notStored counts intake results HIVE_JOBS kept refusing.
	notStored atomic.Uint64
}

// unknownKind is where stats count commands of kinds Decode does not know:
// the subject of a request is the sender's choice, so it must not grow a map.
const unknownKind = "unknown"

func (s *stats) record(kind string, e *commands.Error) {
	if !slices.Contains(commands.Kinds, kind) {
		kind = unknownKind
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKind[kind]++
	if e != nil {
		if s.byCode[kind] == nil {
			s.byCode[kind] = map[string]uint64{}
		}
		s.byCode[kind][e.Code]++
	}
}

// StatsData is the custom data of one endpoint in the service's stats.
type StatsData struct {
	// Commands and Errors (by code) count this endpoint's commands.
	Commands uint64            `json:"commands"`
	Errors   map[string]uint64 `json:"errors"`
	// InFlight and MaxInFlight are the agent's, across endpoints.
	InFlight    int `json:"in_flight"`
	MaxInFlight int `json:"max_in_flight"`
	// UnknownCommands counts requests to subjects that name no command.
	UnknownCommands uint64 `json:"unknown_commands"`
	// Republished counts results and replies published again after a
	// reconnect, across endpoints.
	Republished uint64 `json:"republished"`
	// ResultsNotStored counts intake commands whose result HIVE_JOBS kept
	// refusing (e.g. full with discard new): published and acknowledged
	// anyway, so not readable later (docs/intake.md). Across endpoints.
	ResultsNotStored uint64 `json:"results_not_stored"`
	// GPUs are the agent's GPUs now (memory, taint); see gpu.go.
	GPUs []commands.GPUInfo `json:"gpus,omitempty"`
}

func (s *stats) snapshot(kind string, inFlight, max int, republished uint64) StatsData {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := StatsData{Commands: s.byKind[kind], Errors: map[string]uint64{}, InFlight: inFlight, MaxInFlight: max, Republished: republished,
		ResultsNotStored: s.notStored.Load()}
	for code, n := range s.byCode[kind] {
		d.Errors[code] = n
	}
	for k, n := range s.byKind {
		if !slices.Contains(commands.Kinds, k) {
			d.UnknownCommands += n
		}
	}
	return d
}

// InFlight counts the commands running now, request/reply and intake.
func (c *Consumer) InFlight() int { return len(c.sem) }

// backlogTimeout bounds the question IntakeBacklog asks the server.
const backlogTimeout = 2 * time.Second

// IntakeBacklog reports the hive's intake consumer's stored commands not
// yet delivered and those delivered but not acknowledged, as the server
// counts them; ok is false without a running intake or when the server
// does not answer.
func (c *Consumer) IntakeBacklog() (pending, unacked uint64, ok bool) {
	if c.intake == nil {
		return 0, 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	info, err := c.intake.consumer().Info(ctx)
	if err != nil {
		return 0, 0, false
	}
	return info.NumPending, uint64(info.NumAckPending), true
}
