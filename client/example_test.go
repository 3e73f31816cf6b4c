package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/client"
)

// A spawn that prints its narration as it comes, then the worker; the
// exit status a CLI would use follows the error's kind.
func ExampleClient_Spawn() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		return
	}
	defer nc.Close()
	c := client.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := c.Spawn(ctx, "h1", client.SpawnRequest{ModelID: "meta-llama/Llama-3-8b", Device: "cuda:0", Wait: "ready"},
		func(e client.Event) { fmt.Println(client.EventLine(e)) })
	var ae *client.AgentError
	switch {
	case errors.As(err, &ae):
		fmt.Fprintln(os.Stderr, "hive h1:", ae) // exit 1
	case errors.Is(err, client.ErrNoAgent):
		fmt.Fprintln(os.Stderr, err) // exit 3
	case err == nil:
		fmt.Printf("worker %s pid %d port %d\n", r.Result.WorkerID, r.Result.PID, r.Result.Port)
	}
}

// Every worker of every hive, as the ls table.
func ExampleClient_ListAll() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		return
	}
	defer nc.Close()
	workers, failed, err := client.New(nc).ListAll(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	client.WriteTable(os.Stdout, workers)
	for _, f := range failed {
		fmt.Fprintln(os.Stderr, f) // "hive h2: no agent answered: …"
	}
}
