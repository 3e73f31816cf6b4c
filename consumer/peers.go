package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// How long FindPeers listens: at most peerWait in all, and no longer than
// peerQuiet after the last answer.
const (
	peerWait  = 500 * time.Millisecond
	peerQuiet = 150 * time.Millisecond
)

// Peer is another hive-agent that serves a hive id.
type Peer struct {
	HiveID string
	// Instance is its micro service id.
	Instance string
	Host     string
	PID      int
	Version  string
}

func (p Peer) String() string {
	return fmt.Sprintf("hive-agent %s on host %s (pid %d, instance %s)", p.Version, p.Host, p.PID, p.Instance)
}

// FindPeers asks every hive-agent on the NATS system for its micro info and
// returns those that serve hiveID. Call it before Start, or the agent
// finds itself. It listens for about half a second, less when no agent at
// all or only quick ones answer.
func FindPeers(ctx context.Context, nc *nats.Conn, hiveID string) ([]Peer, error) {
	subj, err := micro.ControlSubject(micro.InfoVerb, ServiceName, "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", inbox, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj, inbox, nil); err != nil {
		return nil, fmt.Errorf("ask %s: %w", subj, err)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, peerWait)
	defer cancel()
	var peers []Peer
	quiet := peerWait
	for {
		wait, cancelWait := context.WithTimeout(ctx, quiet)
		msg, err := sub.NextMsgWithContext(wait)
		cancelWait()
		if parent.Err() != nil {
			return nil, parent.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) {
			return peers, nil // quiet, or no agent at all
		}
		if err != nil {
			return peers, fmt.Errorf("read answers to %s: %w", subj, err)
		}
		quiet = peerQuiet
		var info micro.Info
		if json.Unmarshal(msg.Data, &info) != nil || info.Metadata["hive_id"] != hiveID {
			continue
		}
		pid, _ := strconv.Atoi(info.Metadata["pid"])
		peers = append(peers, Peer{HiveID: hiveID, Instance: info.ID, Host: info.Metadata["host"], PID: pid, Version: info.Metadata["version"]})
	}
}
