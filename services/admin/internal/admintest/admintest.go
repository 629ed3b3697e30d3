// Package admintest runs the admin API for tests: an embedded NATS server,
// the config and runs stores on it, and admin.Run on a random loopback port.
package admintest

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin"
)

// Env is a running admin API.
type Env struct {
	NATS    *natstest.Server
	Configs *config.Store
	Runs    *run.Store
	Addr    string
	Token   string
	// Logs holds everything the server logged.
	Logs *Buffer
}

// Start runs the admin API with token (empty: no authentication) until t
// ends.
func Start(t testing.TB, token string) *Env {
	t.Helper()
	ns := natstest.Start(t)
	ctx := context.Background()
	configs, err := config.OpenStore(ctx, ns.JS, bus.BucketConfig)
	require.NoError(t, err)
	runs, err := run.OpenStore(ctx, ns.JS, bus.BucketRuns)
	require.NoError(t, err)
	e := &Env{NATS: ns, Configs: configs, Runs: runs, Token: token, Logs: &Buffer{}}
	e.Addr = Serve(t, admin.Deps{JS: ns.JS, Configs: configs, Runs: runs, Log: zerolog.New(e.Logs), Token: token})
	return e
}

// Serve runs admin.Run with d on 127.0.0.1:0 until t ends, and returns the
// bound address.
func Serve(t testing.TB, d admin.Deps) string {
	t.Helper()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	d.Listen = "127.0.0.1:0"
	d.Ready = func(addr string) { ready <- addr }
	go func() { done <- admin.Run(ctx, d) }()
	select {
	case addr := <-ready:
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-done)
		})
		return addr
	case err := <-done:
		cancel()
		require.NoError(t, err)
		t.FailNow()
		return ""
	}
}

// Client returns a client of the admin API sending token (none if empty).
func (e *Env) Client(t testing.TB, token string) adminv1.AdminServiceClient {
	t.Helper()
	return adminv1.NewAdminServiceClient(Conn(t, e.Addr, token))
}

// Conn dials addr, sending token (none if empty), and closes when t ends.
func Conn(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(withToken(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func withToken(token string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// Buffer is a bytes.Buffer safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
