//go:build unix

package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// deploy/nats/fleet/hub.conf and leaf.conf, loaded as they are (only the
// addresses, the store and the hub's cluster routes replaced): the leaf
// dials the hub, its agent runs under the hive set, and the queen on the
// hub queues a command through the intake and reads its outcome from the
// leaf's domain.
func TestTopology_HubAndLeafFiles(t *testing.T) {
	lockHive(t)
	dir := t.TempDir()
	for _, name := range []string{"QUEEN", "OPERATOR", "HIVE", "LEAF"} {
		t.Setenv(name+"_PASSWORD", "pw-"+strings.ToLower(name))
	}
	load := func(name string) *server.Options {
		t.Helper()
		opts, err := server.ProcessConfigFile(filepath.Join(repoRoot(t), "deploy", "nats", "fleet", name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", -1, filepath.Join(dir, name)
		return opts
	}
	hubOpts := load("hub.conf")
	if hubOpts.JetStreamDomain != "hub" || hubOpts.LeafNode.Port != 7422 || hubOpts.Cluster.Name != "hub" || len(hubOpts.Routes) != 2 {
		t.Fatalf("hub.conf: domain %q, leaf port %d, cluster %q, routes %v", hubOpts.JetStreamDomain, hubOpts.LeafNode.Port, hubOpts.Cluster.Name, hubOpts.Routes)
	}
	hubOpts.Cluster, hubOpts.Routes = server.ClusterOpts{}, nil // one hub server here
	hubOpts.LeafNode.Host, hubOpts.LeafNode.Port = "127.0.0.1", freePort(t)
	leafOpts := load("leaf.conf")
	if leafOpts.JetStreamDomain != "gpu-home" || len(leafOpts.LeafNode.Remotes) != 1 {
		t.Fatalf("leaf.conf: domain %q, remotes %v", leafOpts.JetStreamDomain, leafOpts.LeafNode.Remotes)
	}
	u, _ := url.Parse(fmt.Sprintf("nats-leaf://leaf:pw-leaf@127.0.0.1:%d", hubOpts.LeafNode.Port))
	leafOpts.LeafNode.Remotes[0].URLs = []*url.URL{u}
	f := &fleet{hubOpts: *hubOpts}
	f.hub = f.startHub(t)
	leaf := startServer(t, leafOpts)
	f.waitLinks(t, 1)

	pw := filepath.Join(dir, "hive.pw")
	os.WriteFile(pw, []byte("pw-hive\n"), 0o600)
	a := startBinary(t, t.TempDir(), "--hive-id", permHive, "--nats-url", leaf.ClientURL(), "--jetstream", "on",
		"--nats-user", "hive-"+permHive, "--nats-password-file", pw)
	a.waitLog(t, "taking durable intake commands")

	queen, err := nats.Connect(f.hub.ClientURL(), nats.UserInfo("queen", "pw-queen"))
	if err != nil {
		t.Fatal(err)
	}
	defer queen.Close()
	waitServed(t, queen, permHive)
	if err := queen.Publish("hive."+permHive+".intake.worker.list", []byte(`{"job_id":"topo-1"}`)); err != nil {
		t.Fatal(err)
	}
	queen.Flush()
	qpw := filepath.Join(dir, "queen.pw")
	os.WriteFile(qpw, []byte("pw-queen\n"), 0o600)
	r := mustCLI(t, f.hub.ClientURL(), "job", "topo-1", "-f", "--timeout", "30s", "--jetstream-domain", "gpu-home",
		"--nats-user", "queen", "--nats-password-file", qpw)
	if !strings.Contains(r.stdout, "kind:    worker.list") || !strings.Contains(r.stdout, "ok:      true") {
		t.Errorf("job from the hub: %s", r)
	}
	// The operator on the hub reads the leaf's domain too: the job, the
	// stored events, the fleet view.
	opw := filepath.Join(dir, "operator.pw")
	os.WriteFile(opw, []byte("pw-operator\n"), 0o600)
	operator := []string{"--jetstream-domain", "gpu-home", "--nats-user", "operator", "--nats-password-file", opw}
	r = mustCLI(t, f.hub.ClientURL(), append([]string{"job", "topo-1"}, operator...)...)
	if !strings.Contains(r.stdout, "kind:    worker.list") || !strings.Contains(r.stdout, "ok:      true") {
		t.Errorf("job from the hub as operator: %s", r)
	}
	r = mustCLI(t, f.hub.ClientURL(), append([]string{"events", "--since", "10m"}, operator...)...)
	if !strings.Contains(r.stdout, permHive+" inventory") {
		t.Errorf("events from the hub as operator: %s", r)
	}
	r = mustCLI(t, f.hub.ClientURL(), append([]string{"hives"}, operator...)...)
	if !strings.Contains(r.stdout, permHive+" ") {
		t.Errorf("hives from the hub as operator: %s", r)
	}
	if out := a.out.String(); strings.Contains(out, "Permissions Violation") || strings.Contains(out, "NATS error") {
		t.Errorf("the agent under the hive set on the leaf hit a permission error:\n%s", out)
	}
}

// docs/topology.md shows the fleet's files byte for byte.
func TestTopology_DocsShowTheFiles(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "topology.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "deploy", "nats", "fleet", "*.conf"))
	if len(files) != 2 {
		t.Fatalf("deploy/nats/fleet holds %v, want hub.conf and leaf.conf", files)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		want, _ := os.ReadFile(f)
		_, rest, ok := strings.Cut(string(doc), "`"+filepath.ToSlash(rel)+"`:\n\n```conf\n")
		if got, _, _ := strings.Cut(rest, "```\n"); !ok || got != string(want) {
			t.Errorf("docs/topology.md's block of %s differs from the file:\n--- doc:\n%s--- file:\n%s", rel, got, want)
		}
	}
}
