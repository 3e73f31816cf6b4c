package consumer

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
)

// Reply is the body of every reply and of job.<job_id>.result.
type Reply struct {
	OK        bool            `json:"ok"`
	Kind      string          `json:"kind"`
	HiveID    string          `json:"hive_id"`
	JobID     string          `json:"job_id"`
	CommandID string          `json:"command_id"`
	Result    any             `json:"result,omitempty"`
	Error     *commands.Error `json:"error,omitempty"`
}

// outcome is one executed command, ready to be published.
type outcome struct {
	kind  string
	env   commands.Envelope
	reply Reply
	body  []byte
	start time.Time
}

// run executes one command (or reports refuse, when set) and publishes its
// narration, result and reply.
func (c *Consumer) run(kind string, in inbound, refuse *commands.Error) {
	o := c.execute(kind, in, refuse)
	// Counted before anything is published: a caller that reads the stats
	// right after its reply must find its command in them.
	c.record(o)
	publish, publishResult := c.out.publish, c.out.publishResult
	if refuse != nil {
		// A refused command did not run: its answer is not kept to be
		// published again, so refusals never fill the republish window.
		publish = func(m *nats.Msg) (*sent, error) { return nil, c.nc.PublishMsg(m) }
		publishResult = publish
	}
	if subj, serr := subjects.JobResult(o.env.JobID); serr == nil {
		if _, perr := publishResult(&nats.Msg{Subject: subj, Data: o.body}); perr != nil {
			c.log.Warn("publish result", "subject", subj, "err", perr)
		}
	}
	if in.reply != "" {
		msg := &nats.Msg{Subject: in.reply, Data: o.body}
		if o.reply.Error != nil {
			// The micro convention, so service-aware clients see an error.
			msg.Header = nats.Header{micro.ErrorCodeHeader: {o.reply.Error.Code}, micro.ErrorHeader: {headerText(o.reply.Error.Message)}}
		}
		// Kept too: a requester with a long timeout still waits for it.
		if _, err := publish(msg); err != nil {
			c.log.Warn("reply", "kind", kind, "job_id", o.env.JobID, "err", err)
		}
	}
}

// execute decodes and runs one command (or reports refuse, when set),
// narrating its start and end; publishing the result is the caller's,
// which differs between request/reply and the intake.
func (c *Consumer) execute(kind string, in inbound, refuse *commands.Error) outcome {
	start := time.Now()
	cmd, env, decodeErr := commands.Decode(kind, in.data)
	if decodeErr != nil && in.jobID != "" {
		env.JobID, env.CommandID = in.jobID, in.commandID
	}
	j := c.jobs.acquire(env.JobID)
	defer c.jobs.release(j)
	if in.afterSeq > 0 {
		j.continueAfter(in.afterSeq)
	}
	n := c.narrator(j, env.CommandID)
	verb := actionVerb(kind)
	n.Narrate(actionPrefix(verb)+verb+"_start", commands.LevelInfo,
		fmt.Sprintf("Hive %s received %s command %s%s.", c.cfg.HiveID, kind, env.CommandID, in.via), commands.Fields{})

	var result any
	var err error
	switch {
	case refuse != nil:
		err = refuse
	case decodeErr != nil:
		err = decodeErr
	default:
		result, err = cmd.Execute(c.runCtx, commands.Deps{Spawner: c.cfg.Spawner, Narrator: n, Events: c, Defaults: c.cfg.Defaults,
			Catalog: c.cfg.Catalog, GPU: c.cfg.GPU, Agent: c, MaxResultBytes: c.resultRoom(kind, env)})
		if in.after != nil {
			result, err = in.after(cmd, n, result, err)
		}
	}
	reply := Reply{OK: err == nil, Kind: kind, HiveID: c.cfg.HiveID, JobID: env.JobID, CommandID: env.CommandID}
	if err != nil {
		reply.Error = commands.ToError(err)
	} else {
		reply.Result = result
	}
	body, merr := json.Marshal(reply)
	if merr != nil {
		c.log.Error("encode reply", "kind", kind, "err", merr)
		reply.OK, reply.Result = false, nil
		reply.Error = &commands.Error{Code: commands.CodeInternal, Message: "encode reply: " + merr.Error()}
		body, _ = json.Marshal(reply)
	}

	if max := c.nc.MaxPayload() - replyHeaderRoom; max > 0 && int64(len(body)) > max {
		c.log.Error("reply too large for NATS", "kind", kind, "bytes", len(body), "max_payload", c.nc.MaxPayload())
		reply.OK, reply.Result = false, nil
		reply.Error = &commands.Error{Code: commands.CodeInternal, Message: fmt.Sprintf(
			"the %s result is %d bytes, more than this NATS server's max_payload of %d allows; %s", kind, len(body), c.nc.MaxPayload(), askForLess(kind))}
		body, _ = json.Marshal(reply)
	}

	ok := reply.OK
	end := Event{Action: endAction(verb, ok), Level: commands.LevelInfo, OK: &ok, Error: reply.Error}
	end.Human, end.WorkerID, end.PID = summary(kind, reply)
	if !ok {
		end.Level = commands.LevelError
	}
	n.publish(end)
	return outcome{kind: kind, env: env, reply: reply, body: body, start: start}
}

// resultRoom is how many bytes a command's result may take JSON-encoded
// for its reply to fit the connection's max payload (headers' room kept).
func (c *Consumer) resultRoom(kind string, env commands.Envelope) int64 {
	base, _ := json.Marshal(Reply{OK: true, Kind: kind, HiveID: c.cfg.HiveID, JobID: env.JobID, CommandID: env.CommandID})
	return c.nc.MaxPayload() - replyHeaderRoom - int64(len(base)+len(`,"result":`))
}

// record counts and logs a finished command.
func (c *Consumer) record(o outcome) {
	kind, reply, env, start := o.kind, o.reply, o.env, o.start
	c.stats.record(kind, reply.Error)
	code := "ok"
	if reply.Error != nil {
		code = reply.Error.Code
	}
	c.cfg.Metrics.CommandDone(kind, code, time.Since(start))
	attrs := []any{"kind", kind, "job_id", env.JobID, "command_id", env.CommandID, "ok", reply.OK, "took", time.Since(start).Round(time.Microsecond)}
	if reply.Error != nil {
		attrs = append(attrs, "code", reply.Error.Code, "error", reply.Error.Message)
	}
	if reply.Error != nil && reply.Error.Code == commands.CodeInternal {
		c.log.Error("command failed", attrs...)
	} else {
		c.log.Info("command", attrs...)
	}
}

// headerText makes an error message fit a NATS header value: one line, short.
func headerText(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func actionVerb(kind string) string {
	switch kind {
	case commands.KindSpawn:
		return "spawn"
	case commands.KindDelete:
		return "delete"
	case commands.KindList:
		return "list"
	case commands.KindGet:
		return "get"
	case commands.KindLogs:
		return "logs"
	case commands.KindRestart:
		return "restart"
	case commands.KindDrain:
		return "drain"
	case commands.KindResume:
		return "resume"
	}
	return "command"
}

// askForLess says how to ask for a smaller result of kind.
func askForLess(kind string) string {
	if kind == commands.KindLogs {
		return "ask for fewer lines or a smaller max_bytes"
	}
	return "ask for fewer log_lines"
}

// actionPrefix is "agent_" for the agent's own commands, else "worker_".
func actionPrefix(verb string) string {
	if verb == "drain" || verb == "resume" {
		return "agent_"
	}
	return "worker_"
}

func endAction(verb string, ok bool) string {
	if !ok {
		return actionPrefix(verb) + verb + "_failed"
	}
	switch verb {
	case "spawn":
		return "worker_spawned"
	case "delete":
		return "worker_deleted"
	case "list":
		return "worker_listed"
	case "logs":
		return "worker_logs_read"
	case "restart":
		return "worker_restart_done"
	case "drain":
		return "agent_drained"
	case "resume":
		return "agent_resume_done"
	}
	return "worker_got"
}

// summary is the readable sentence of a command's end event.
func summary(kind string, r Reply) (human, workerID string, pid int) {
	if r.Error != nil {
		return fmt.Sprintf("%s failed (%s): %s", kind, r.Error.Code, headerText(r.Error.Message)), "", 0
	}
	switch v := r.Result.(type) {
	case commands.SpawnResult:
		if v.Existing {
			return fmt.Sprintf("Worker %s was already running as pid %d; answered with it.", v.WorkerID, v.PID), v.WorkerID, v.PID
		}
		return fmt.Sprintf("Worker %s is running as pid %d on port %d (waited for: %s).", v.WorkerID, v.PID, v.Port, v.Wait), v.WorkerID, v.PID
	case commands.RestartResult:
		return fmt.Sprintf("Worker %s was restarted: pid %d replaced pid %d on port %d (waited for: %s).", v.WorkerID, v.PID, v.PreviousPID, v.Port, v.Wait), v.WorkerID, v.PID
	case commands.DrainResult:
		if !v.Draining {
			return fmt.Sprintf("Hive %s is not draining.", r.HiveID), "", 0
		}
		return fmt.Sprintf("Hive %s is draining since %s; %d worker(s) stopped.", r.HiveID, v.Since, len(v.Stopped)), "", 0
	case AlreadyStoppedResult:
		return v.Note, v.WorkerID, 0
	case commands.DeleteResult:
		if v.PID == 0 { // only a pending restart was cancelled
			return fmt.Sprintf("Worker %s was waiting to be restarted; the restart is cancelled and no process was left to stop.", v.WorkerID), v.WorkerID, 0
		}
		return fmt.Sprintf("Worker %s (pid %d) stopped after %s in %d ms.", v.WorkerID, v.PID, v.Signal, v.StoppedMS), v.WorkerID, v.PID
	case commands.ListResult:
		return fmt.Sprintf("Hive %s has %d worker(s).", r.HiveID, len(v.Workers)), "", 0
	case commands.GetResult:
		return fmt.Sprintf("Worker %s is running as pid %d.", v.WorkerID, v.PID), v.WorkerID, v.PID
	case commands.LogsResult:
		return fmt.Sprintf("Read %d line(s) of worker %s's log; the next read starts at offset %d of %d bytes.", len(v.Lines), v.WorkerID, v.Offset, v.Size), v.WorkerID, 0
	}
	return kind + " done.", "", 0
}
