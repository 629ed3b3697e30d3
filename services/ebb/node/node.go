// Package node runs a set of Ebb's services in one process against one NATS
// server: all of them for `ebb dev`, any subset for `ebb serve`.
package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

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
	Admin    AdminOptions
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
	if err := bus.Provision(ctx, o.JS, o.Limits); err != nil {
		return err
	}
	p, err := plane.Open(ctx, o.JS)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(o.Services))
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
			return scheduler.Run(ctx, scheduler.Deps{Plane: p, Log: log, Leases: leases})
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
