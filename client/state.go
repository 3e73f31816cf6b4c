package client

import (
	"time"

	"github.com/rbee/hive-agent/wire"
)

// ListOptions are the options of ListWith and ListAllWith.
type ListOptions struct {
	// Exited adds the workers that exited within the agent's
	// --exited-ttl (list "all": true).
	Exited bool
}

func (o ListOptions) wire() wire.ListRequest {
	return wire.ListRequest{All: o.Exited}
}

// departedText is the ls UPTIME cell of a worker that is not running:
// how it ended and when, and when it restarts.
func departedText(s WorkerStatus, now time.Time) string {
	txt := s.ExitText() + ", " + HumanDuration(now.Sub(s.ExitedAt.Time)) + " ago"
	if !s.RestartAt.IsZero() {
		txt += ", restart in " + HumanDuration(max(0, s.RestartAt.Sub(now)))
	}
	return txt
}
