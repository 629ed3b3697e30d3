package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// schedulerLeaseTTL is the scheduler's default lease.
const schedulerLeaseTTL = 10 * time.Second

// runWatch follows every write to the runs bucket, in the order the
// bucket's stream took them, and notes any moment a sync had two runs
// that were not over.
type runWatch struct {
	mu       sync.Mutex
	state    map[string]run.State       // by run key
	active   map[string]map[string]bool // sync -> active run keys
	started  map[string]int             // sync -> runs seen
	overlaps []string
}

func watchRuns(t *testing.T, pl *plane.Plane) *runWatch {
	t.Helper()
	kv, err := pl.JS.KeyValue(context.Background(), bus.BucketRuns)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := kv.Watch(ctx, "run.>")
	require.NoError(t, err)
	rw := &runWatch{state: map[string]run.State{}, active: map[string]map[string]bool{}, started: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var r run.Run
			if json.Unmarshal(e.Value(), &r) != nil {
				continue
			}
			rw.see(e.Key(), &r)
		}
	}()
	t.Cleanup(func() { _ = w.Stop(); cancel(); <-done })
	return rw
}

func (rw *runWatch) see(key string, r *run.Run) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.active[r.Sync] == nil {
		rw.active[r.Sync] = map[string]bool{}
	}
	if _, seen := rw.state[key]; !seen {
		rw.started[r.Sync]++
		if !r.State.Terminal() && len(rw.active[r.Sync]) > 0 {
			var others []string
			for k := range rw.active[r.Sync] {
				others = append(others, k)
			}
			rw.overlaps = append(rw.overlaps, fmt.Sprintf("%s started while %v active", key, others))
		}
	}
	rw.state[key] = r.State
	if r.State.Terminal() {
		delete(rw.active[r.Sync], key)
	} else {
		rw.active[r.Sync][key] = true
	}
}

// minStarted is the fewest runs any of the syncs has had.
func (rw *runWatch) minStarted(syncs []string) int {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	n := -1
	for _, s := range syncs {
		if n < 0 || rw.started[s] < n {
			n = rw.started[s]
		}
	}
	return n
}

func (rw *runWatch) overlapsSoFar() []string {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return append([]string(nil), rw.overlaps...)
}

// TestSchedulersRaceWithOneStopped runs two scheduler processes on the same
// syncs, scheduled @every 1s. The one holding the lease is frozen with
// SIGSTOP for longer than the lease; the other takes over; the frozen one
// is thawed with SIGCONT. Throughout, the runs bucket never shows a sync
// with two active runs, and the thawed copy, no longer the leader, starts
// no run: its lease revision is stale (the fencing token).
func TestSchedulersRaceWithOneStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and freezes a process for longer than the scheduler lease")
	}
	pg := newPGSchema(t)
	pg.exec(`CREATE TABLE $S.items (id bigint PRIMARY KEY, name text)`)
	pg.exec(`INSERT INTO $S.items SELECT i, 'name ' || i FROM generate_series(1, 200) AS i`)
	hook := capture.New(capture.Options{})
	hookURL, err := hook.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(hook.Close)
	// Runs last a while, so a schedule often fires while its run is active.
	hook.SetLatency(100 * time.Millisecond)

	ns := natstest.Start(t)
	ctx := context.Background()
	pl, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)

	// The pipeline runs in this process; the schedulers are what is tested.
	nctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- node.Run(nctx, node.Options{JS: ns.JS, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
			Services: []string{"differ", "extractor", "transformer", "delivery", "reporting"}})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	syncs := []string{"s1", "s2", "s3"}
	require.NoError(t, pl.Configs.Put(ctx, config.KindSource, "wh", config.Source{Name: "wh", Type: "postgres",
		Config: map[string]any{"dsn": postgresDSN()}}))
	require.NoError(t, pl.Configs.Put(ctx, config.KindDestination, "hook", config.Destination{Name: "hook", Type: "webhook",
		Config: map[string]any{"url": hookURL, "batch_size": 20}}))
	for _, s := range syncs {
		require.NoError(t, pl.Configs.Put(ctx, config.KindSync, s, config.Sync{Name: s, Source: "wh", Destination: "hook",
			Mode: config.ModeAll, Schedule: "@every 1s",
			Model: config.Model{SQL: "SELECT id, name FROM " + pg.schema + ".items", PrimaryKey: []string{"id"}}}))
	}
	rw := watchRuns(t, pl)

	ps := newProcs(t, ns.URL)
	ps.start("scheduler-a", "scheduler")
	ps.start("scheduler-b", "scheduler")
	leases, err := ns.JS.KeyValue(ctx, bus.BucketLeases)
	require.NoError(t, err)
	holder := func() string {
		e, err := leases.Get(ctx, "scheduler")
		if err != nil {
			return ""
		}
		var l struct {
			Holder  string    `json:"holder"`
			Expires time.Time `json:"expires"`
		}
		if json.Unmarshal(e.Value(), &l) != nil {
			return ""
		}
		pid := l.Holder[strings.LastIndex(l.Holder, ":")+1:]
		for _, name := range []string{"scheduler-a", "scheduler-b"} {
			if pid == strconv.Itoa(ps.pid(name)) {
				return name
			}
		}
		return ""
	}

	waitFor(t, time.Minute, func() bool { return holder() != "" && rw.minStarted(syncs) >= 3 },
		"the schedulers elect a leader and start runs")
	leader := holder()
	other := map[string]string{"scheduler-a": "scheduler-b", "scheduler-b": "scheduler-a"}[leader]
	t.Logf("%s leads; %d runs of each sync so far", leader, rw.minStarted(syncs))

	ps.signal(leader, syscall.SIGSTOP)
	frozenAt := time.Now()
	waitFor(t, 3*schedulerLeaseTTL, func() bool { return holder() == other }, "%s takes the lease over", other)
	t.Logf("%s took the lease over %s after the freeze", other, time.Since(frozenAt).Round(100*time.Millisecond))
	n := rw.minStarted(syncs)
	waitFor(t, time.Minute, func() bool {
		return rw.minStarted(syncs) >= n+3 && time.Since(frozenAt) > schedulerLeaseTTL+5*time.Second
	}, "the new leader starts runs while the old one is frozen")
	// Whatever the frozen copy logs from now on, it logs after the thaw.
	logBefore := len(ps.readLog(leader))
	ps.signal(leader, syscall.SIGCONT)
	t.Logf("%s thawed after %s", leader, time.Since(frozenAt).Round(100*time.Millisecond))

	n = rw.minStarted(syncs)
	waitFor(t, time.Minute, func() bool { return rw.minStarted(syncs) >= n+5 }, "runs go on after the thaw")
	require.Equal(t, other, holder(), "the thawed copy does not take the lease back from a live leader")
	require.Empty(t, rw.overlapsSoFar(), "a sync had two active runs")

	var stale []string
	for _, line := range strings.Split(ps.readLog(leader)[logBefore:], "\n") {
		if strings.Contains(line, `"started scheduled run"`) {
			stale = append(stale, line)
		}
	}
	require.Empty(t, stale, "FENCING: the thawed, stale scheduler started runs after it lost the lease")
	require.True(t, ps.running("scheduler-a") && ps.running("scheduler-b"))
	t.Logf("%d runs of each sync at least; no overlap", rw.minStarted(syncs))
}
