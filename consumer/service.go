package consumer

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/internal/version"
	"github.com/rbee/hive-agent/subjects"
)

// addService registers the micro service with its worker and agent
// endpoints and the current metadata (draining included).
func (c *Consumer) addService() (micro.Service, error) {
	meta := metadata(c.cfg.HiveID, c.cfg.Version, c.cfg.Metadata)
	if c.drain.active() {
		meta["draining"] = "true"
	}
	svc, err := micro.AddService(c.nc, micro.Config{
		Name:        ServiceName,
		Version:     version.SemVer(c.cfg.Version), // micro accepts only strict SemVer
		Description: "Starts and stops LLM worker processes of hive " + c.cfg.HiveID,
		Metadata:    meta,
		StatsHandler: func(e *micro.Endpoint) any {
			d := c.stats.snapshot(endpointKind(e.Name), len(c.sem), c.cfg.MaxInFlight, c.out.count())
			d.GPUs = c.gpuStats()
			return d
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add micro service: %w", err)
	}
	add := func(name, kind, subj string) error {
		handler := micro.HandlerFunc(func(req micro.Request) {
			c.dispatch(kind, inbound{subject: req.Subject(), reply: req.Reply(), data: req.Data()})
		})
		if err := svc.AddEndpoint(name, handler, micro.WithEndpointSubject(subj)); err != nil {
			return fmt.Errorf("add endpoint %s: %w", name, err)
		}
		return nil
	}
	for _, cmd := range subjects.Commands {
		subj, err := subjects.WorkerCommand(c.cfg.HiveID, cmd)
		if err == nil {
			err = add(cmd, "worker."+cmd, subj)
		}
		if err != nil {
			return nil, errors.Join(err, svc.Stop())
		}
	}
	for _, cmd := range subjects.AgentCommands {
		subj, err := subjects.AgentCommand(c.cfg.HiveID, cmd)
		if err == nil {
			err = add(cmd, "agent."+cmd, subj)
		}
		if err != nil {
			return nil, errors.Join(err, svc.Stop())
		}
	}
	return svc, nil
}

// endpointKind is the command kind an endpoint serves.
func endpointKind(name string) string {
	for _, cmd := range subjects.AgentCommands {
		if name == cmd {
			return "agent." + name
		}
	}
	return "worker." + name
}

// reregister gives the service new metadata. micro fixes a service's
// metadata when it is added and has no call to change it, so the service
// is added again (its endpoints join the same queue groups, so requests
// are served throughout) and the old one stopped after. The new one has
// a new instance id and its stats start at zero.
func (c *Consumer) reregister() error {
	c.svcMu.Lock()
	defer c.svcMu.Unlock()
	if c.svc == nil {
		return nil // not started, or closed
	}
	svc, err := c.addService()
	if err != nil {
		return err
	}
	if err := c.nc.Flush(); err != nil {
		c.log.Warn("flush new service subscriptions", "err", err)
	}
	old := c.svc
	c.svc = svc
	id := svc.Info().ID
	c.instance.Store(&id)
	if err := old.Stop(); err != nil {
		return fmt.Errorf("stop the service with the old metadata: %w", err)
	}
	c.log.Info("service registered again with new metadata", "service_id", id, "draining", strconv.FormatBool(c.drain.active()))
	return nil
}
