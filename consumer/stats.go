package consumer

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/hive-agent/wire"
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

func (s *stats) record(kind string, e *wire.Error) {
	if !slices.Contains(wire.Kinds, kind) {
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

func (s *stats) snapshot(kind string, inFlight, max int, republished uint64) wire.StatsData {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := wire.StatsData{Commands: s.byKind[kind], Errors: map[string]uint64{}, InFlight: inFlight, MaxInFlight: max, Republished: republished,
		ResultsNotStored: s.notStored.Load()}
	for code, n := range s.byCode[kind] {
		d.Errors[code] = n
	}
	for k, n := range s.byKind {
		if !slices.Contains(wire.Kinds, k) {
			d.UnknownCommands += n
		}
	}
	return d
}

// InFlight counts the commands running now, request/reply and intake.
func (c *Consumer) InFlight() int { return c.adm.inFlight() }

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
