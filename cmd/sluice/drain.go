package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/config"
)

// drainCmd asks a local sluice to drain: the pod's preStop hook runs it,
// since a distroless image has no curl. It talks to the admin address,
// where /drain is served (the public one refuses it).
func drainCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "sluice's admin address (default: SLUICE_ADMIN_ADDR, else "+defaultOf("SLUICE_ADMIN_ADDR")+")")
	timeout := fs.Duration("timeout", 0, "how long to wait (default: SLUICE_SHUTDOWN_TIMEOUT + 10s)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if *addr == "" {
		*addr = cmp.Or(vars["SLUICE_ADMIN_ADDR"], defaultOf("SLUICE_ADMIN_ADDR"))
	}
	if *timeout == 0 {
		d, err := time.ParseDuration(cmp.Or(vars["SLUICE_SHUTDOWN_TIMEOUT"], defaultOf("SLUICE_SHUTDOWN_TIMEOUT")))
		if err != nil {
			d = 30 * time.Second
		}
		*timeout = d + 10*time.Second
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintln(stderr, "sluice drain: bad address:", err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(host, port)+"/drain", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "sluice drain:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Fprint(stdout, string(body))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

// defaultOf is the documented default of a variable (config.Vars), so that
// drain, which does not load the whole configuration (a preStop hook must
// not fail on it), uses the service's own.
func defaultOf(name string) string {
	for _, v := range config.Vars() {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}
