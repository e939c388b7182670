package config

import (
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Kubernetes puts these into every container of a namespace for every
// Service in it (unless the pod sets enableServiceLinks: false), with
// <NAME> the Service's name upper-cased and '-' turned into '_':
//
//	<NAME>_SERVICE_HOST=10.0.0.11
//	<NAME>_SERVICE_PORT=8080               and _SERVICE_PORT_<PORTNAME>=8080
//	<NAME>_PORT=tcp://10.0.0.11:8080
//	<NAME>_PORT_8080_TCP=tcp://10.0.0.11:8080
//	<NAME>_PORT_8080_TCP_PROTO=tcp, _PORT=8080, _ADDR=10.0.0.11
//
// A Service named sluice-metrics therefore sets SLUICE_METRICS_SERVICE_HOST
// and friends. The unknown-variable check must let those through, or every
// pod in the namespace exits 2, and must still refuse a typo: a name is
// taken for a service link only when its shape and its value both are what
// the kubelet writes.
var (
	linkServiceHost = regexp.MustCompile(`^[A-Z0-9_]+_SERVICE_HOST$`)
	linkServicePort = regexp.MustCompile(`^[A-Z0-9_]+_SERVICE_PORT(_[A-Z0-9_]+)?$`)
	linkPortURL     = regexp.MustCompile(`^[A-Z0-9_]+_PORT(_[0-9]+_(TCP|UDP|SCTP))?$`)
	linkPortPart    = regexp.MustCompile(`^[A-Z0-9_]+_PORT_[0-9]+_(TCP|UDP|SCTP)_(PROTO|PORT|ADDR)$`)
)

// serviceLink reports whether name=value is a variable the kubelet injects
// for a Service (see above).
func serviceLink(name, value string) bool {
	// A Service whose own name ends in -service or -port makes the shapes
	// overlap, so every shape that fits is tried.
	if linkServiceHost.MatchString(name) && net.ParseIP(value) != nil {
		return true
	}
	if linkServicePort.MatchString(name) && isPort(value) {
		return true
	}
	if linkPortPart.MatchString(name) {
		switch name[strings.LastIndexByte(name, '_')+1:] {
		case "PROTO":
			if value == "tcp" || value == "udp" || value == "sctp" {
				return true
			}
		case "PORT":
			if isPort(value) {
				return true
			}
		case "ADDR":
			if net.ParseIP(value) != nil {
				return true
			}
		}
	}
	if linkPortURL.MatchString(name) {
		proto, hostport, ok := strings.Cut(value, "://")
		if ok && (proto == "tcp" || proto == "udp" || proto == "sctp") {
			host, port, err := net.SplitHostPort(hostport)
			return err == nil && net.ParseIP(host) != nil && isPort(port)
		}
	}
	return false
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}
