// Package embedded runs a NATS server with JetStream inside the process, for
// `ebb dev` and for tests.
package embedded

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options for an embedded NATS server.
type Options struct {
	Host     string // default 127.0.0.1
	Port     int    // -1 picks a free port
	StoreDir string // JetStream data directory
	// MaxPayload is the largest message the server takes; 0 keeps the
	// NATS default (1 MiB).
	MaxPayload int32
}

// StartNATS starts a JetStream-enabled NATS server and waits until it
// accepts connections.
func StartNATS(o Options) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	srv, err := server.NewServer(&server.Options{
		Host:      o.Host,
		Port:      o.Port,
		JetStream: true,
		StoreDir:  o.StoreDir,
		NoSigs:    true,
		// Embedded use: keep JetStream's memory modest and disk unlimited.
		JetStreamMaxMemory: 256 << 20,
		MaxPayload:         o.MaxPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s:%d did not start within 10s", o.Host, o.Port)
	}
	return srv, nil
}
