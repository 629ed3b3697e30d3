// Package admin serves Ebb's admin gRPC API (proto/ebb/admin/v1): the
// configuration of sources, destinations and syncs, and runs. The ebb CLI
// (package cli) is a thin client of it.
package admin

import (
	"context"
	"errors"
	"fmt"
	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/quarantine"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// DefaultListen is the address the admin API listens on by default.
const DefaultListen = "127.0.0.1:7070"

// shutdownGrace bounds the graceful stop: calls still running after it are
// cut off.
const shutdownGrace = 10 * time.Second

// Deps is what the admin API needs.
type Deps struct {
	JS jetstream.JetStream
	// Bus publishes run events; when nil, Run opens it on JS.
	Bus     *bus.Bus
	Configs *config.Store
	Runs    *run.Store
	// Quarantine tracks records that keep failing; when nil, Run opens it
	// on the state bucket.
	Quarantine *quarantine.Store
	// State is the state bucket (pauses); when nil, Run opens it.
	State jetstream.KeyValue
	Log   zerolog.Logger
	// Listen is the TCP address to serve on, such as "127.0.0.1:7070".
	Listen string
	// Token is the bearer token every call must carry. Empty means no
	// authentication, and then Listen must be a loopback address.
	Token string
	// Ready, if set, is called with the bound address once listening.
	Ready func(addr string)
	// Forget deletes what an ended run left in the data plane (see
	// plane.Plane.ForgetRun); nil leaves it to the stages.
	Forget func(ctx context.Context, sync, runID string) error
	// OpenSource opens a warehouse, for TestTransformation's sample rows.
	// Nil leaves that call unavailable: the admin module does not link
	// the warehouse drivers itself.
	OpenSource func(ctx context.Context, s config.Source) (source.Source, error)
}

// Run serves the admin API until ctx ends, then stops gracefully, cutting
// off calls still running after 10 s.
func Run(ctx context.Context, d Deps) error {
	if d.Listen == "" {
		d.Listen = DefaultListen
	}
	if d.Token == "" {
		if err := requireLoopback(d.Listen); err != nil {
			return err
		}
	}
	if d.State == nil && d.JS != nil {
		state, err := d.JS.KeyValue(ctx, bus.BucketState)
		if err != nil {
			return fmt.Errorf("admin API: opening state bucket: %w", err)
		}
		d.State = state
	}
	if d.Bus == nil && d.JS != nil {
		b, err := bus.Open(ctx, d.JS)
		if err != nil {
			return fmt.Errorf("admin API: %w", err)
		}
		d.Bus = b
	}
	if d.Quarantine == nil && d.State != nil {
		d.Quarantine = quarantine.New(d.State)
	}
	lis, err := new(net.ListenConfig).Listen(ctx, "tcp", d.Listen)
	if err != nil {
		return fmt.Errorf("admin API: listening on %s: %w", d.Listen, err)
	}
	log := d.Log.With().Str(logging.FieldService, "admin").Logger()

	srv := newGRPCServer(log, d.Token)
	adminv1.RegisterAdminServiceServer(srv, &server{d: d, log: log})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus(adminv1.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	addr := lis.Addr().String()
	log.Info().Str(fieldAddr, addr).Bool(fieldAuth, d.Token != "").Msg("admin API listening")
	if d.Ready != nil {
		d.Ready(addr)
	}

	select {
	case err := <-served:
		return fmt.Errorf("admin API: serving: %w", err)
	case <-ctx.Done():
	}
	hs.Shutdown()
	stop(srv)
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("admin API: serving: %w", err)
	}
	log.Info().Msg("admin API stopped")
	return nil
}

// stop stops srv gracefully, bounded by shutdownGrace.
func stop(srv *grpc.Server) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop()
		<-done
	}
}

// requireLoopback refuses to serve without a token on an address other
// machines can reach.
func requireLoopback(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("admin API: listen address %q: %w", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("admin API: refusing to listen on %s without a token: "+
		"set a token, or listen on a loopback address such as 127.0.0.1:7070", listen)
}

// server implements the AdminService.
type server struct {
	adminv1.UnimplementedAdminServiceServer
	d   Deps
	log zerolog.Logger
	// mu serialises configuration writes, so that the checks a write makes
	// (exists, referenced by a sync) still hold when it is made.
	mu sync.Mutex
}
