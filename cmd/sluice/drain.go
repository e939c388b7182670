package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// drainCmd asks a local sluice to drain: the pod's preStop hook runs it,
// since a distroless image has no curl.
func drainCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "address of sluice's HTTP server (default: from SLUICE_HTTP_ADDR, else :8080)")
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
		*addr = vars["SLUICE_HTTP_ADDR"]
		if *addr == "" {
			*addr = ":8080"
		}
	}
	if *timeout == 0 {
		d, err := time.ParseDuration(vars["SLUICE_SHUTDOWN_TIMEOUT"])
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
