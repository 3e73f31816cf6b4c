package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rbee/hive-agent/wire"
)

func TestTime_WireFormats(t *testing.T) {
	at := time.Date(2026, 11, 26, 18, 55, 57, 13_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"time: UTC, milliseconds", wire.Time{Time: at}, `"2026-11-26T17:55:57.013Z"`},
		{"time: zero milliseconds kept", wire.Time{Time: at.Truncate(time.Second)}, `"2026-11-26T17:55:57.000Z"`},
		{"event time: UTC, nanoseconds, fixed width", wire.EventTime{Time: at}, `"2026-11-26T17:55:57.013000000Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.v)
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
			var back wire.Time
			if err := json.Unmarshal(got, &back); err != nil || !back.Equal(at.Truncate(time.Millisecond)) && !back.Equal(at.Truncate(time.Second)) {
				t.Errorf("read back %v, %v; want %v", back, err, at)
			}
		})
	}
}

func TestTime_RefusesWhatIsNotRFC3339(t *testing.T) {
	for _, body := range []string{`"yesterday"`, `12`, `"2026-11-26 17:55:57"`} {
		var v wire.Time
		if err := json.Unmarshal([]byte(body), &v); err == nil {
			t.Errorf("%s: got %v, want an error", body, v)
		}
		var e wire.EventTime
		if err := json.Unmarshal([]byte(body), &e); err == nil {
			t.Errorf("%s: got %v, want an error", body, e)
		}
	}
}
