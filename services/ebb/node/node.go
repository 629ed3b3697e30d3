// Package node runs a set of Ebb's services in one process against one NATS
// server: all of them for `ebb dev`, any subset for `ebb serve`.
package node

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	destbuiltin "github.com/ebb-etl/ebb/libs/destination/builtin"
	"github.com/ebb-etl/ebb/libs/plane"
	srcbuiltin "github.com/ebb-etl/ebb/libs/source/builtin"
	"github.com/ebb-etl/ebb/services/delivery"
	"github.com/ebb-etl/ebb/services/differ"
	"github.com/ebb-etl/ebb/services/extractor"
	"github.com/ebb-etl/ebb/services/reporting"
	"github.com/ebb-etl/ebb/services/scheduler"
	"github.com/ebb-etl/ebb/services/transformer"
)

// Services lists every service a node can run, in start order.
var Services = []string{"scheduler", "differ", "extractor", "transformer", "delivery", "reporting", "admin"}

// Options choose what a node runs.
type Options struct {
	JS       jetstream.JetStream
	Log      zerolog.Logger
	Services []string // default: all
	Limits   bus.Limits
	// Replicas, when set, overrides Limits.Replicas: how many copies a NATS
	// cluster keeps of every stream, bucket and object store (1 on a
	// single server; 3 in production clusters).
	Replicas int
	Admin    AdminOptions
	// HTTP, when set, is the address of the process's HTTP server:
	// /metrics, /healthz, /readyz, and /ui/ when the admin service runs.
	HTTP string
	// Profile also serves Go's profiler at /debug/pprof/ on HTTP.
	Profile bool
	// HTTPReady, if set, is called with the HTTP server's bound address.
	HTTPReady func(addr string)
	// RunRetention is how long finished runs are kept (default 30 days).
	RunRetention time.Duration
}

// AdminOptions configure the admin API service.
type AdminOptions struct {
	Listen string
	Token  string
	Ready  func(addr string)
}

// ParseServices checks a comma-separated list of service names.
func ParseServices(list string) ([]string, error) {
	if list == "" || list == "all" {
		return Services, nil
	}
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(Services, name) {
			return nil, fmt.Errorf("unknown service %q (known: %s)", name, strings.Join(Services, ", "))
		}
		out = append(out, name)
	}
	return out, nil
}

// Run provisions streams and buckets, then runs the services until ctx ends
// or one of them fails; it returns after every service has stopped.
func Run(ctx context.Context, o Options) error {
	if len(o.Services) == 0 {
		o.Services = Services
	}
	if o.Limits.Replicas == 0 {
		o.Limits = bus.DefaultLimits()
	}
	if o.Replicas > 0 {
		o.Limits.Replicas = o.Replicas
	}
	if err := bus.Provision(ctx, o.JS, o.Limits); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	p, err := plane.Open(ctx, o.JS)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(o.Services)+1)
	if o.HTTP != "" {
		// Listening first means the address is known (and taken) before
		// any service starts.
		lis, err := new(net.ListenConfig).Listen(ctx, "tcp", o.HTTP)
		if err != nil {
			return fmt.Errorf("http: listening on %s: %w", o.HTTP, err)
		}
		if o.HTTPReady != nil {
			o.HTTPReady(lis.Addr().String())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveHTTP(ctx, p, o, lis); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("http: %w", err)
				cancel()
			}
		}()
	}
	for _, name := range o.Services {
		runService := service(name, p, o)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runService(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	o.Log.Info().Strs("services", o.Services).Msg("node running")
	wg.Wait()
	close(errs)
	return <-errs
}

// service returns the Run function of a named service.
func service(name string, p *plane.Plane, o Options) func(context.Context) error {
	log := o.Log
	switch name {
	case "scheduler":
		return func(ctx context.Context) error {
			leases, err := p.JS.KeyValue(ctx, bus.BucketLeases)
			if err != nil {
				return err
			}
			return scheduler.Run(ctx, scheduler.Deps{Plane: p, Log: log, Leases: leases, RunRetention: o.RunRetention})
		}
	case "differ":
		return func(ctx context.Context) error {
			return differ.Run(ctx, differ.Deps{Plane: p, Log: log, OpenSource: srcbuiltin.Open})
		}
	case "extractor":
		return func(ctx context.Context) error {
			return extractor.Run(ctx, extractor.Deps{Plane: p, Log: log, OpenSource: srcbuiltin.Open})
		}
	case "transformer":
		return func(ctx context.Context) error { return transformer.Run(ctx, transformer.Deps{Plane: p, Log: log}) }
	case "delivery":
		return func(ctx context.Context) error {
			return delivery.Run(ctx, delivery.Deps{Plane: p, Log: log, OpenDestination: destbuiltin.Open})
		}
	case "reporting":
		return func(ctx context.Context) error { return reporting.Run(ctx, reporting.Deps{Plane: p, Log: log}) }
	case "admin":
		return func(ctx context.Context) error { return runAdmin(ctx, p, o) }
	}
	return func(context.Context) error { return fmt.Errorf("unknown service %q", name) }
}
