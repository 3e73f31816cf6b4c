package consumer

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
)

// DefaultEventsMaxAge is how long HIVE_EVENTS keeps events by default.
const DefaultEventsMaxAge = 24 * time.Hour

// events is HIVE_EVENTS: every hive's lifecycle, health and agent events
// (hive.*.events.>), kept by age, so that `hive-agent events --since`
// can replay what happened while nobody listened. It captures no request
// subject: events are only ever published, never requested.
func (c StreamsConfig) events() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "hive-agent events of every hive: worker lifecycle, health, drain",
		Subjects:    []string{subjects.AllEvents},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.EventsMaxAge,
		Duplicates:  min(c.DuplicateWindow, c.EventsMaxAge),
		Replicas:    c.Replicas,
	}
}
