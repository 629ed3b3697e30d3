// Package natstest starts an embedded JetStream server per test, on a random
// port with its data in the test's temp dir, with Ebb's streams provisioned.
package natstest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/embedded"
)

// Server is a running test server and a client connection to it.
type Server struct {
	Server *server.Server
	URL    string
	NC     *nats.Conn
	JS     jetstream.JetStream
	Bus    *bus.Bus

	dir  string // the store directory, kept for Restart
	port int
}

// Start starts a server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn starts a server keeping its data in dir, so a test can stop it and
// start another on the same data.
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	srv, err := embedded.StartNATS(embedded.Options{Port: -1, StoreDir: dir})
	require.NoError(t, err)
	nc, js, err := bus.Connect(srv.ClientURL(), t.Name())
	require.NoError(t, err)
	limits := bus.DefaultLimits()
	limits.WorkMaxBytes = 64 << 20
	require.NoError(t, bus.Provision(context.Background(), js, limits))
	b, err := bus.Open(context.Background(), js)
	require.NoError(t, err)
	s := &Server{Server: srv, URL: srv.ClientURL(), NC: nc, JS: js, Bus: b, dir: dir, port: srv.Addr().(*net.TCPAddr).Port}
	t.Cleanup(s.Stop)
	return s
}

// Stop closes the connection and shuts the server down; it is safe to call twice.
func (s *Server) Stop() {
	s.NC.Close()
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
}

// Restart shuts the server down, cutting every client connection, then
// starts it again on the same port and store directory, as an operator
// restarting nats-server would; down is how long it stays down. Clients
// (NC included) reconnect by themselves. Not safe to call concurrently
// with other uses of s.Server.
func (s *Server) Restart(down time.Duration) error {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
	time.Sleep(down)
	srv, err := embedded.StartNATS(embedded.Options{Port: s.port, StoreDir: s.dir})
	if err != nil {
		return fmt.Errorf("restarting NATS on port %d: %w", s.port, err)
	}
	s.Server = srv
	return nil
}

// Cluster is a running test cluster and a client connected to every node.
type Cluster struct {
	*embedded.Cluster
	// URLs are every node's client URL, comma-separated: connect with all
	// of them so a client survives the death of the node it is on.
	URLs string
	NC   *nats.Conn
	JS   jetstream.JetStream
}

// StartCluster starts an n-node JetStream cluster for t, each node with its
// data in the test's temp dir, with Ebb's streams, buckets and object store
// provisioned at n replicas (at most 3), and shuts it down when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ec, err := embedded.StartCluster(t.TempDir(), n)
	require.NoError(t, err)
	t.Cleanup(ec.Shutdown)
	c := &Cluster{Cluster: ec, URLs: ec.URLs()}
	c.NC, c.JS, err = bus.Connect(c.URLs, t.Name())
	require.NoError(t, err)
	t.Cleanup(c.NC.Close)
	limits := bus.DefaultLimits()
	limits.WorkMaxBytes = 64 << 20
	limits.Replicas = min(n, 3)
	// Right after the meta leader is elected, stream creation can still
	// answer "insufficient resources" or time out while peers catch up.
	require.Eventually(t, func() bool {
		return bus.Provision(context.Background(), c.JS, limits) == nil
	}, 30*time.Second, 100*time.Millisecond, "provisioning streams on the cluster")
	return c
}
