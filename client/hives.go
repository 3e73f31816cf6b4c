package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rbee/hive-agent/wire"
)

// ServiceName is the micro service every hive-agent registers as.
const ServiceName = "hive-agent"

// HiveInfo is one running agent as the micro service reports it. Two
// agents started by mistake with one hive id are two HiveInfos.
type HiveInfo struct {
	HiveID string `json:"hive_id"`
	// Instance is the agent's micro service id.
	Instance string `json:"instance"`
	// Version is the agent's version as its build carries it.
	Version string `json:"version"`
	// Host and Devices come from the service metadata; empty when the
	// agent does not publish them.
	Host    string   `json:"host,omitempty"`
	Devices []string `json:"devices,omitempty"`
	// GPUs are the agent's GPUs: from its stats (live) when it answers
	// them, else from its metadata (as at its start); none from agents
	// before GPU memory was reported.
	GPUs []GPU `json:"gpus,omitempty"`
	// The rest is filled by Hives only.
	//
	// Workers is the number of workers the hive listed; -1 when unknown.
	Workers     int       `json:"workers"`
	InFlight    int       `json:"in_flight"`
	MaxInFlight int       `json:"max_in_flight"`
	Started     time.Time `json:"started,omitzero"`
	UptimeMS    int64     `json:"uptime_ms"`
	// Stale: the agent does not answer now; LastSeen is when HIVE_EVENTS
	// stored its last heartbeat (Fleet only), which Workers and InFlight
	// come from.
	Stale    bool      `json:"stale,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Error says what could not be read, when something could not.
	Error    string            `json:"error,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Uptime is how long the agent had been running when it answered.
func (h HiveInfo) Uptime() time.Duration { return time.Duration(h.UptimeMS) * time.Millisecond }

// HiveError is a hive that was discovered but did not answer a command.
type HiveError struct {
	HiveID string
	Err    error
}

func (e HiveError) Error() string { return "hive " + e.HiveID + ": " + e.Err.Error() }

// Unwrap returns the hive's error.
func (e HiveError) Unwrap() error { return e.Err }

// Discover finds every running agent: it asks $SRV.INFO.hive-agent and
// collects the answers until none came for the discovery quiet period.
// No answer at all is ErrNoAgent. Agents come sorted by hive id.
func (c *Client) Discover(ctx context.Context) ([]HiveInfo, error) {
	subj, err := micro.ControlSubject(micro.InfoVerb, ServiceName, "")
	if err != nil {
		return nil, err
	}
	ctx, cancel := bound(ctx, c.timeout)
	defer cancel()
	ctx, done := c.guard(ctx, subj)
	defer done()
	inbox := c.nc.NewInbox()
	answers := make(chan *nats.Msg, 1024)
	sub, err := c.nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", inbox, err)
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(subj, inbox, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", subj, err)
	}
	var hives []HiveInfo
	seen := map[string]bool{}
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	for {
		select {
		case m := <-answers:
			// The server answers a request nobody serves with status 503.
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				if len(hives) == 0 {
					return nil, noAgent(ctx, subj, nats.ErrNoResponders)
				}
				continue
			}
			var info micro.Info
			if json.Unmarshal(m.Data, &info) != nil || info.Name != ServiceName || seen[info.ID] {
				continue
			}
			seen[info.ID] = true
			hives = append(hives, hiveOf(info))
			quiet.Reset(c.quiet)
		case <-quiet.C:
			sortHives(hives)
			return hives, nil
		case <-ctx.Done():
			if len(hives) == 0 {
				return nil, noAgent(ctx, subj, ctx.Err())
			}
			sortHives(hives)
			return hives, nil
		}
	}
}

func hiveOf(info micro.Info) HiveInfo {
	h := HiveInfo{HiveID: info.Metadata["hive_id"], Instance: info.ID, Version: info.Metadata["version"],
		Host: info.Metadata["host"], Workers: -1, Metadata: info.Metadata}
	if h.Version == "" {
		h.Version = info.Version
	}
	for _, d := range strings.Split(info.Metadata["devices"], ",") {
		if d = strings.TrimSpace(d); d != "" {
			h.Devices = append(h.Devices, d)
		}
	}
	if s := info.Metadata["gpus"]; s != "" {
		_ = json.Unmarshal([]byte(s), &h.GPUs) // an undecodable list shows none
	}
	return h
}

func sortHives(hs []HiveInfo) {
	slices.SortFunc(hs, func(a, b HiveInfo) int {
		if c := NaturalCompare(a.HiveID, b.HiveID); c != 0 {
			return c
		}
		return cmp.Compare(a.Instance, b.Instance)
	})
}

// hiveIDs are the distinct hive ids of hs, skipping agents without one.
func hiveIDs(hs []HiveInfo) []string {
	var ids []string
	for _, h := range hs {
		if h.HiveID != "" && !slices.Contains(ids, h.HiveID) {
			ids = append(ids, h.HiveID)
		}
	}
	return ids
}

// listEach lists every hive concurrently.
func (c *Client) listEach(ctx context.Context, ids []string, o ListOptions) (map[string][]Worker, []HiveError) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	found := map[string][]Worker{}
	var failed []HiveError
	for _, id := range ids {
		wg.Go(func() {
			ws, err := c.ListWith(ctx, id, o)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, HiveError{HiveID: id, Err: err})
				return
			}
			found[id] = ws
		})
	}
	wg.Wait()
	slices.SortFunc(failed, func(a, b HiveError) int { return NaturalCompare(a.HiveID, b.HiveID) })
	return found, failed
}

// ListAll lists the workers of every hive Discover finds, asking the hives
// concurrently. A hive that does not answer is reported in failed, not an
// error; no agent at all is ErrNoAgent. Workers come sorted by hive, then
// by worker id in natural order.
func (c *Client) ListAll(ctx context.Context) (workers []Worker, failed []HiveError, err error) {
	return c.ListAllWith(ctx, ListOptions{})
}

// ListAllWith is ListAll with options.
func (c *Client) ListAllWith(ctx context.Context, o ListOptions) (workers []Worker, failed []HiveError, err error) {
	hives, err := c.Discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	found, failed := c.listEach(ctx, hiveIDs(hives), o)
	workers = []Worker{}
	for _, ws := range found {
		workers = append(workers, ws...)
	}
	SortWorkers(workers)
	return workers, failed, nil
}

// Hives describes every running agent: Discover's answers completed with
// each agent's $SRV.STATS (commands in flight, start time) and the number
// of workers its hive lists. What one agent fails to answer is in its
// Error; no agent at all is ErrNoAgent.
func (c *Client) Hives(ctx context.Context) ([]HiveInfo, error) {
	hives, err := c.Discover(ctx)
	if err != nil {
		return nil, err
	}
	// Stats first: a list running at the same time would count itself
	// among the commands in flight.
	var wg sync.WaitGroup
	for i := range hives {
		wg.Go(func() { c.stats(ctx, &hives[i]) })
	}
	wg.Wait()
	found, failed := c.listEach(ctx, hiveIDs(hives), ListOptions{})
	for i := range hives {
		h := &hives[i]
		if ws, ok := found[h.HiveID]; ok {
			h.Workers = len(ws)
		}
		for _, f := range failed {
			if f.HiveID == h.HiveID {
				h.Error = strings.TrimPrefix(h.Error+"; ", "; ") + "list: " + f.Err.Error()
			}
		}
	}
	return hives, nil
}

// stats completes h from its instance's $SRV.STATS.
func (c *Client) stats(ctx context.Context, h *HiveInfo) {
	subj, err := micro.ControlSubject(micro.StatsVerb, ServiceName, h.Instance)
	if err == nil {
		ctx, cancel := bound(ctx, c.timeout)
		defer cancel()
		var m *nats.Msg
		if m, err = c.nc.RequestWithContext(ctx, subj, nil); err == nil {
			err = readStats(m.Data, h)
		} else {
			err = noAgent(ctx, subj, err)
		}
	}
	if err != nil {
		h.Error = "stats: " + err.Error()
	}
}

func readStats(data []byte, h *HiveInfo) error {
	var st micro.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	h.Started = st.Started
	if !st.Started.IsZero() {
		h.UptimeMS = max(0, time.Since(st.Started).Milliseconds())
	}
	// Every endpoint reports the agent-wide figures; take the largest in
	// case the answers were read at slightly different moments.
	for _, e := range st.Endpoints {
		var d wire.StatsData
		if e == nil || len(e.Data) == 0 || json.Unmarshal(e.Data, &d) != nil {
			continue
		}
		h.InFlight = max(h.InFlight, d.InFlight)
		h.MaxInFlight = max(h.MaxInFlight, d.MaxInFlight)
		if len(d.GPUs) > 0 {
			h.GPUs = d.GPUs
		}
	}
	return nil
}
