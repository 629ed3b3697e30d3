package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/embedded"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// pipelineServices are every service but the admin API.
var pipelineServices = []string{"scheduler", "differ", "extractor", "transformer", "delivery", "reporting"}

// natsEnv is an embedded JetStream server in a temp dir, with Ebb's streams
// provisioned and the control plane opened.
type natsEnv struct {
	dir   string
	srv   *server.Server
	nc    *nats.Conn
	plane *plane.Plane
}

func startNATS(ctx context.Context) (*natsEnv, error) {
	dir, err := os.MkdirTemp("", "ebb-bench-nats-")
	if err != nil {
		return nil, err
	}
	srv, err := embedded.StartNATS(embedded.Options{Port: -1, StoreDir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &natsEnv{dir: dir, srv: srv}
	nc, js, err := bus.Connect(srv.ClientURL(), "ebb-bench")
	if err != nil {
		e.stop()
		return nil, err
	}
	e.nc = nc
	if err := bus.Provision(ctx, js, bus.DefaultLimits()); err != nil {
		e.stop()
		return nil, err
	}
	if e.plane, err = plane.Open(ctx, js); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func (e *natsEnv) url() string { return e.srv.ClientURL() }

func (e *natsEnv) stop() {
	if e.nc != nil {
		e.nc.Close()
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	os.RemoveAll(e.dir)
}

// benchLog keeps the services' warnings and errors on stderr, away from the
// table.
func benchLog() zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// inProcess runs a node with the given services inside the benchmark's
// process, as `ebb dev` does; stop ends it.
type inProcess struct {
	cancel context.CancelFunc
	done   chan error
}

func startNode(e *natsEnv, services []string) *inProcess {
	ctx, cancel := context.WithCancel(context.Background())
	n := &inProcess{cancel: cancel, done: make(chan error, 1)}
	go func() {
		n.done <- node.Run(ctx, node.Options{JS: e.plane.JS, Log: benchLog(), Services: services})
	}()
	return n
}

func (n *inProcess) stop() error {
	n.cancel()
	return <-n.done
}

// apply stores a config file in the config bucket, as `ebb apply` does
// through the admin API.
func (e *natsEnv) apply(ctx context.Context, f config.File) error {
	if err := f.Validate(); err != nil {
		return err
	}
	for _, s := range f.Sources {
		if err := e.plane.Configs.Put(ctx, config.KindSource, s.Name, s); err != nil {
			return err
		}
	}
	for _, d := range f.Destinations {
		if err := e.plane.Configs.Put(ctx, config.KindDestination, d.Name, d); err != nil {
			return err
		}
	}
	for _, s := range f.Syncs {
		if err := e.plane.Configs.Put(ctx, config.KindSync, s.Name, s); err != nil {
			return err
		}
	}
	return nil
}

// trigger starts a run of sync by hand, as `ebb sync run` does.
func (e *natsEnv) trigger(ctx context.Context, sync string) (*run.Run, error) {
	return run.Start(ctx, e.plane.Bus, e.plane.Runs, sync, "manual")
}

// phases are when a run was first seen in each state, from its trigger.
type phases struct {
	start time.Time
	order []run.State
	at    map[run.State]time.Duration
}

func (p *phases) see(s run.State) {
	if p.at == nil {
		p.at = map[run.State]time.Duration{}
	}
	if _, ok := p.at[s]; !ok {
		p.at[s] = time.Since(p.start)
		p.order = append(p.order, s)
	}
}

// String says how long each state lasted, as far as polling saw.
func (p phases) String() string {
	var b strings.Builder
	for i, s := range p.order {
		if i+1 == len(p.order) {
			break
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", s, (p.at[p.order[i+1]] - p.at[s]).Round(time.Millisecond))
	}
	return b.String()
}

// wait polls a run until it ends, and fails unless it succeeded.
func (e *natsEnv) wait(ctx context.Context, r *run.Run, timeout time.Duration, ph *phases) (*run.Run, error) {
	deadline := time.Now().Add(timeout)
	for {
		cur, err := e.plane.Runs.Get(ctx, r.Sync, r.ID)
		if err != nil {
			return nil, err
		}
		if ph != nil {
			ph.see(cur.State)
		}
		if cur.State.Terminal() {
			if cur.State != run.Succeeded {
				return cur, fmt.Errorf("run %s of %s ended %s: %s", cur.ID, cur.Sync, cur.State, cur.Error)
			}
			return cur, nil
		}
		if time.Now().After(deadline) {
			return cur, fmt.Errorf("run %s of %s still %s after %s", cur.ID, cur.Sync, cur.State, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runSync triggers a run and waits for it; it returns the time from the
// trigger to the run's end, and how long each state lasted.
func (e *natsEnv) runSync(ctx context.Context, sync string, timeout time.Duration) (*run.Run, time.Duration, phases, error) {
	ph := phases{start: time.Now()}
	r, err := e.trigger(ctx, sync)
	if err != nil {
		return nil, 0, ph, err
	}
	r, err = e.wait(ctx, r, timeout, &ph)
	return r, time.Since(ph.start), ph, err
}

// pipelineConfig is one Postgres model synced to a webhook.
func pipelineConfig(modelSQL, hookURL string, mode config.Mode, dest map[string]any) config.File {
	cfg := map[string]any{"url": hookURL, "batch_size": 500}
	for k, v := range dest {
		cfg[k] = v
	}
	return config.File{
		Sources:      []config.Source{{Name: "bench_pg", Type: "postgres", Config: map[string]any{"dsn": postgresDSN()}}},
		Destinations: []config.Destination{{Name: "bench_hook", Type: "webhook", Config: cfg}},
		Syncs: []config.Sync{{
			Name: "bench", Source: "bench_pg", Destination: "bench_hook", Mode: mode, Schedule: "manual",
			Model: config.Model{SQL: modelSQL, PrimaryKey: []string{"id"}},
		}},
	}
}

// pipeline is an embedded NATS with a node running some of Ebb's services
// in this process: what most scenarios sync through.
type pipeline struct {
	*natsEnv
	node *inProcess
}

func startPipeline(ctx context.Context, services []string) (*pipeline, error) {
	env, err := startNATS(ctx)
	if err != nil {
		return nil, err
	}
	return &pipeline{natsEnv: env, node: startNode(env, services)}, nil
}

// stop stops the node, then NATS.
func (p *pipeline) stop() {
	_ = p.node.stop()
	p.natsEnv.stop()
}
