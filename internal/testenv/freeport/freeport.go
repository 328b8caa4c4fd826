// Package freeport finds a free loopback TCP port for the local servers the
// tests start (PostgreSQL, MinIO). The port is free when asked; a server
// that then finds it taken picks another (both callers retry).
package freeport

import (
	"fmt"
	"net"
)

// Get asks the kernel for a free port on 127.0.0.1.
func Get() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
