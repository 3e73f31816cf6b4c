package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// Inventory reasons.
const (
	InventoryStart     = "start"
	InventoryReconnect = "reconnect"
)

// inventoryTimeout bounds the process-table scan behind an inventory.
const inventoryTimeout = 10 * time.Second

// KeepAlive returns the connection options that make a server that
// stopped answering noticed within about (maxPingsOut+1) ping intervals:
// the keep-alive, and a write deadline of one ping interval. Without the
// deadline (nats.go's default is a minute), a connection whose socket
// stopped draining blocks every publish in a write that holds the
// connection's lock, the keep-alive with it: under load a frozen server
// went unnoticed for 60 s. A write that times out ends the connection
// (CloseOnWriteTimeout): the reconnect then publishes the results again.
func KeepAlive(ping time.Duration, maxPingsOut int) []nats.Option {
	return []nats.Option{
		nats.PingInterval(ping),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.FlusherTimeout(ping),
		nats.SetCustomDialer(CloseOnWriteTimeout(nil)),
	}
}

// CloseOnWriteTimeout dials with d (a plain TCP dialer when nil) and
// returns connections that close themselves when a write times out. On a
// timed-out write nats.go drops what it had buffered, and when nothing of
// it was written it keeps the connection as if it had been sent, whoever
// wrote (the flusher, or any publish that filled the buffer): results
// kept by the outbox would be lost without a reconnect. Closed, the
// connection fails its next read, and nats.go reconnects by its usual
// path, reporting the error, so the loss is recorded and the reconnect
// publishes them again. Use it around a dialer of one's own.
func CloseOnWriteTimeout(d nats.CustomDialer) nats.CustomDialer {
	if d == nil {
		d = &net.Dialer{Timeout: nats.DefaultTimeout}
	}
	return closingDialer{d}
}

type closingDialer struct{ d nats.CustomDialer }

func (c closingDialer) Dial(network, address string) (net.Conn, error) {
	conn, err := c.d.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return closingConn{conn}, nil
}

// closingConn is a connection that closes itself when a write times out.
type closingConn struct{ net.Conn }

func (c closingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		c.Conn.Close()
	}
	return n, err
}

// Disconnected records that the connection to NATS was found lost. Wire
// it to nats.DisconnectErrHandler: results published in the window before
// this moment are published again by Reconnected.
func (c *Consumer) Disconnected(err error) {
	c.out.disconnected(time.Now())
}

// Reconnected publishes again the results and replies that went out from
// the RepublishWindow before the loss was noticed until now (unless known
// to be stored), then the inventory with reason "reconnect". Wire it to
// nats.ReconnectHandler; nats.go calls it after the subscriptions were
// restored, from its callback goroutine.
func (c *Consumer) Reconnected() {
	if n := c.out.reconnected(time.Now()); n > 0 {
		c.log.Info("published results again after the reconnect; consumers deduplicate by command_id", "count", n)
	}
	ctx, cancel := context.WithTimeout(c.runCtx, inventoryTimeout)
	defer cancel()
	c.publishInventory(ctx, InventoryReconnect)
}

// publishInventory publishes the workers running now. When the process
// table cannot be read nothing is published: an empty list would tell the
// queen that every worker is gone.
func (c *Consumer) publishInventory(ctx context.Context, reason string) {
	instance := c.instance.Load()
	if instance == nil {
		return // not started yet; Start publishes the first one
	}
	res, err := (&commands.List{}).Execute(ctx, commands.Deps{Spawner: c.cfg.Spawner})
	if err != nil {
		c.log.Error("list workers for the inventory; not publishing it", "reason", reason, "err", err)
		return
	}
	subj, err := subjects.Inventory(c.cfg.HiveID)
	if err != nil {
		c.log.Error("inventory subject", "err", err)
		return
	}
	body, err := json.Marshal(wire.InventoryEvent{HiveID: c.cfg.HiveID, Reason: reason, Instance: *instance,
		Workers: res.(wire.ListResult).Workers})
	if err == nil {
		err = c.nc.Publish(subj, body)
	}
	if err != nil {
		c.log.Warn("publish inventory", "subject", subj, "err", err)
	}
}
