package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// postgresDSN is the test server (see pgtest.DSN).
func postgresDSN() string { return pgtest.DSN() }

// pg is a Postgres schema of the test's own, dropped when it ends.
type pg struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
}

func newPG(t *testing.T) *pg {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, postgresDSN())
	require.NoError(t, err)
	schema := fmt.Sprintf("ebb_e2e_%d", rand.Int63())
	_, err = pool.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		pool.Close()
	})
	return &pg{t: t, pool: pool, schema: schema}
}

func (p *pg) exec(sql string, args ...any) {
	p.t.Helper()
	_, err := p.pool.Exec(context.Background(), strings.ReplaceAll(sql, "$S", p.schema), args...)
	require.NoError(p.t, err, sql)
}

func (p *pg) count(sql string) int {
	p.t.Helper()
	var n int
	require.NoError(p.t, p.pool.QueryRow(context.Background(), strings.ReplaceAll(sql, "$S", p.schema)).Scan(&n))
	return n
}

// rows reads a query of (key json, row json) into a map from the capture's
// key form to the row, with exact numbers.
func (p *pg) rows(sql string) map[string]map[string]any {
	p.t.Helper()
	rows, err := p.pool.Query(context.Background(), strings.ReplaceAll(sql, "$S", p.schema))
	require.NoError(p.t, err)
	defer rows.Close()
	out := map[string]map[string]any{}
	for rows.Next() {
		var k, v string
		require.NoError(p.t, rows.Scan(&k, &v))
		out[capture.KeyString(decodeJSON(p.t, k))] = decodeJSON(p.t, v)
	}
	require.NoError(p.t, rows.Err())
	return out
}

func decodeJSON(t *testing.T, s string) map[string]any {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	require.NoError(t, d.Decode(&m))
	return m
}

// env is a running Ebb: an embedded NATS and a node with every service.
type env struct {
	t     *testing.T
	ns    *natstest.Server
	plane *plane.Plane
	admin string
	// httpReady yields the node's HTTP address (metrics, health) once.
	httpReady chan string
	stop      func()
}

func startEnv(t *testing.T) *env {
	t.Helper()
	return startEnvIn(t, t.TempDir())
}

// startEnvIn starts NATS on dir and a node; stop ends both, so a test can
// start again on the same data.
func startEnvIn(t *testing.T, dir string) *env {
	t.Helper()
	return startEnvWith(t, dir, "")
}

// startEnvWith also runs the admin API when adminListen is set; e.admin
// is then its address.
func startEnvWith(t *testing.T, dir, adminListen string) *env {
	t.Helper()
	return startEnvOpts(t, envOptions{dir: dir, adminListen: adminListen})
}

// envOptions are what a test may set of its env.
type envOptions struct {
	dir         string
	adminListen string
	limits      bus.Limits // the streams' limits; default bus.DefaultLimits
}

func startEnvOpts(t *testing.T, o envOptions) *env {
	t.Helper()
	dir, adminListen := o.dir, o.adminListen
	if dir == "" {
		dir = t.TempDir()
	}
	ns := natstest.StartIn(t, dir)
	p, err := plane.Open(context.Background(), ns.JS)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	services := []string{"scheduler", "differ", "extractor", "transformer", "delivery", "reporting"}
	ready := make(chan string, 1)
	admin := node.AdminOptions{Listen: adminListen, Ready: func(addr string) { ready <- addr }}
	if adminListen != "" {
		services = append(services, "admin")
	}
	e := &env{t: t, ns: ns, plane: p, httpReady: make(chan string, 1)}
	go func() {
		done <- node.Run(ctx, node.Options{JS: ns.JS, Log: log, Services: services, Admin: admin, Limits: o.limits,
			HTTP: "127.0.0.1:0", HTTPReady: func(addr string) { e.httpReady <- addr }})
	}()
	if adminListen != "" {
		select {
		case e.admin = <-ready:
		case err := <-done:
			t.Fatalf("node stopped: %v", err)
		}
	}
	stopped := false
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		ns.Stop()
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) apply(f config.File) {
	e.t.Helper()
	require.NoError(e.t, f.Validate())
	ctx := context.Background()
	for _, s := range f.Sources {
		require.NoError(e.t, e.plane.Configs.Put(ctx, config.KindSource, s.Name, s))
	}
	for _, d := range f.Destinations {
		require.NoError(e.t, e.plane.Configs.Put(ctx, config.KindDestination, d.Name, d))
	}
	for _, s := range f.Syncs {
		require.NoError(e.t, e.plane.Configs.Put(ctx, config.KindSync, s.Name, s))
	}
}

// runSync starts a run and waits until it ends.
func (e *env) runSync(name string) *run.Run {
	e.t.Helper()
	r, err := run.Start(context.Background(), e.plane.Bus, e.plane.Runs, name, "manual")
	require.NoError(e.t, err)
	return e.waitRun(r, 2*time.Minute)
}

func (e *env) waitRun(r *run.Run, timeout time.Duration) *run.Run {
	e.t.Helper()
	var last *run.Run
	require.Eventually(e.t, func() bool {
		var err error
		last, err = e.plane.Runs.Get(context.Background(), r.Sync, r.ID)
		require.NoError(e.t, err)
		return last.State.Terminal()
	}, timeout, 20*time.Millisecond, "run %s of %s did not end", r.ID, r.Sync)
	return last
}

// sink starts a capture webhook receiver.
func sink(t *testing.T) (*capture.Server, string) {
	t.Helper()
	s := capture.New(capture.Options{})
	url, err := s.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, url
}
