package consumer

import (
	"slices"
	"sync"

	"github.com/rbee/hive-agent/commands"
)

// stats are the agent's own counters, shown per endpoint by
// `nats micro stats hive-agent`: micro's built-in counters only see the
// hand-off of each command to its goroutine.
type stats struct {
	mu     sync.Mutex
	byKind map[string]uint64
	byCode map[string]map[string]uint64 // kind -> code -> count
}

func (s *stats) record(kind string, e *commands.Error) {
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
	// GPUs are the agent's GPUs now (memory, taint); see gpu.go.
	GPUs []commands.GPUInfo `json:"gpus,omitempty"`
}

func (s *stats) snapshot(kind string, inFlight, max int, republished uint64) StatsData {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := StatsData{Commands: s.byKind[kind], Errors: map[string]uint64{}, InFlight: inFlight, MaxInFlight: max, Republished: republished}
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
