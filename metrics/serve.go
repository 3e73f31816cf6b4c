package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Serve serves /metrics on addr until ctx ends. It returns once the
// listener is bound (an error when it cannot be), and the address bound.
// An address without a host, or with 0.0.0.0 or ::, listens on every
// interface; Serve logs a warning naming them, since /metrics has no
// authentication.
func (m *Metrics) Serve(ctx context.Context, addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		m.log.Warn("metrics listen on every interface, without authentication; give --metrics-listen a host (e.g. 127.0.0.1:9464) to bind one",
			"addr", addr, "interfaces", interfaceAddrs())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	return l.Addr().String(), nil
}

// interfaceAddrs lists the machine's interfaces that are up with their
// addresses: "lo 127.0.0.1 ::1, eth0 10.0.0.7".
func interfaceAddrs() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "unknown: " + err.Error()
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		parts := []string{ifc.Name}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				parts = append(parts, ipn.IP.String())
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	return strings.Join(out, ", ")
}
