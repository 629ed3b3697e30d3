package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// TestHistory is the history checker: a randomized, seeded test that
// drives two mirror syncs (one diffed by the local engine, one by the
// warehouse engine) from a model in a Postgres of the test's own into two
// recording webhooks, through many runs, while it changes the model,
// cancels runs, pauses and resumes syncs, retries quarantined keys, kills
// services (each its own `ebb serve` process) with SIGKILL, restarts NATS
// and Postgres mid-run, and makes the destinations slow, fail (5xx),
// reject records (422, and per-record errors that quarantine keys) and
// rate-limit (429 with Retry-After). Kills hunt runs in every phase —
// diffing, extracting, delivering, committing — and the test requires
// that each phase was hit by a kill that landed in it.
//
// Then the chaos stops: faults off, every process up, the syncs resumed,
// quarantined keys retried, runs until one plans nothing. Each destination
// must then hold exactly the model's rows, and no key may ever have
// received a value older than one it had already received (see
// history_checker_test.go). A failure names the invariant, the
// destination and the key, with the key's model history and every
// arrival (op, version, run and the run's path, batch, time).
//
// Sub-tests: "single" (one NATS server, restarted mid-run; Postgres
// restarted mid-run; kills in every phase) and "cluster" (three NATS nodes,
// services given every URL and --replicas 3; one node restarted mid-run).
//
// HISTORY_SEED replays a run (the seed is logged; it fixes the data and
// the actions, while timing decides where kills land). HISTORY_DURATION
// (default 35s: the chaos of "single"; "cluster" gets 3/5 of it; either
// goes on up to as long again while its must-do disruptions remain),
// HISTORY_ROWS (default 2000) and HISTORY_SCENARIOS (single,cluster) tune
// it; HISTORY_DISRUPTIONS=cancel,pause-resume (see disruptionWeights)
// draws only those, to chase one problem. `make chaos` runs a long variant.
func TestHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("history test: builds the binary, runs every service as a process, restarts NATS and Postgres")
	}
	p := readHistoryParams(t)
	t.Logf("history: seed=%d rows=%d duration=%s (replay with HISTORY_SEED=%d)", p.seed, p.rows, p.duration, p.seed)
	for i, sc := range []historyScenario{
		{name: "single", duration: p.duration, requirePhases: true,
			must: []string{disKillDiffing, disKillExtracting, disKillDelivering, disKillCommitting, disRestartNATS, disRestartPG, disCancel}},
		{name: "cluster", cluster: true, duration: p.duration * 3 / 5,
			must: []string{disRestartNATS, disCancel, disPause, disRetry, disRestartNATS}},
	} {
		if !p.scenarios[sc.name] {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			seed := p.seed + uint64(i)
			historyScenarioRun(t, sc, p, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
		})
	}
}

// historyParams come from the environment, so `make chaos` can run long.
type historyParams struct {
	seed      uint64
	rows      int
	duration  time.Duration
	scenarios map[string]bool
	// only, when set (HISTORY_DISRUPTIONS, to chase one problem), limits
	// the disruptions to these, and turns the coverage checks off.
	only map[string]bool
}

func readHistoryParams(t *testing.T) historyParams {
	p := historyParams{seed: uint64(time.Now().UnixNano()), rows: 2000, duration: 35 * time.Second,
		scenarios: map[string]bool{"single": true, "cluster": true}}
	if v := os.Getenv("HISTORY_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "HISTORY_SEED")
		p.seed = n
	}
	if v := os.Getenv("HISTORY_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "HISTORY_ROWS")
		require.GreaterOrEqual(t, n, 100, "HISTORY_ROWS")
		p.rows = n
	}
	if v := os.Getenv("HISTORY_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "HISTORY_DURATION")
		p.duration = d
	}
	if v := os.Getenv("HISTORY_DISRUPTIONS"); v != "" {
		p.only = map[string]bool{}
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			require.True(t, slices.ContainsFunc(disruptionWeights, func(w disruptionWeight) bool { return w.name == s }),
				"HISTORY_DISRUPTIONS: unknown disruption %q", s)
			p.only[s] = true
		}
	}
	if v := os.Getenv("HISTORY_SCENARIOS"); v != "" {
		p.scenarios = map[string]bool{}
		for _, s := range strings.Split(v, ",") {
			p.scenarios[strings.TrimSpace(s)] = true
		}
	}
	return p
}

// historyScenario is one sub-test.
type historyScenario struct {
	name     string
	cluster  bool
	duration time.Duration
	// must are disruptions done first, each until it happens as meant.
	must []string
	// requirePhases fails the test unless kills landed in every phase.
	requirePhases bool
}

// historyEnv is the setup bundle: everything the driver, the settling and
// the checker act on.
type historyEnv struct {
	t         *testing.T
	rows      int
	pg        *pgtest.Cluster
	model     *historyModel
	nats      natsUnderTest
	plane     *plane.Plane
	ps        *procs
	adminAddr string
	admin     adminv1.AdminServiceClient
	rec       *recorder
	dests     []checkedDest
	restarts  map[string]int
}

// cli runs a client command of the binary against the admin API.
func (e *historyEnv) cli(args ...string) (string, error) {
	return ebbCmd(e.t, e.ps.bin, append(args, "--server", e.adminAddr)...)
}

// natsUnderTest is a single server or a cluster, restartable.
type natsUnderTest struct {
	urls     string
	js       jetstream.JetStream
	replicas int
	restart  func(node int, down time.Duration) error
	describe func(node int) string
}

// historyAckWait is the consumers' ack wait in the test's processes
// (EBB_ACK_WAIT): the work of a killed process moves on after it.
const historyAckWait = "3s"

const historyYAML = `
sources:
  - name: wh
    type: postgres
    config: { dsn: "DSN", snapshot_schema: ebb_snap }
destinations:
  - { name: hook_a, type: webhook, config: { url: "URL_A", DELIVERY } }
  - { name: hook_b, type: webhook, config: { url: "URL_B", DELIVERY } }
syncs:
  - name: items_a
    source: wh
    destination: hook_a
    model: { sql: "MODEL", primary_key: [id] }
    mode: mirror
    schedule: manual
    engine: local
    quarantine_after: 2
    safety: { max_delete_share: 1, max_change_share: 1 }
  - name: items_b
    source: wh
    destination: hook_b
    model: { sql: "MODEL", primary_key: [id] }
    mode: mirror
    schedule: manual
    engine: warehouse
    quarantine_after: 2
    safety: { max_delete_share: 1, max_change_share: 1 }
`

const historyDelivery = `batch_size: 50, partitions: 2, ack_window: 2, timeout: 2s, retry_for: 20s, retry_backoff: 200ms, max_attempts: 8`

// setupHistory starts Postgres, NATS, the webhooks and every service, and
// applies the config.
func setupHistory(t *testing.T, sc historyScenario, rows int) *historyEnv {
	t.Helper()
	built := time.Now()
	ebbBinary(t)
	t.Logf("the ebb binary is built (%s)", time.Since(built).Round(time.Millisecond))
	e := &historyEnv{t: t, rows: rows, rec: newRecorder(t), restarts: map[string]int{}}
	e.pg = pgtest.StartCluster(t)
	e.model = newHistoryModel(t, e.pg.DSN, rows)

	if sc.cluster {
		c := natstest.StartCluster(t, 3)
		e.nats = natsUnderTest{urls: c.URLs, js: c.JS, replicas: 3,
			restart: func(node int, down time.Duration) error {
				c.Kill(node)
				time.Sleep(down)
				if err := c.Restart(node); err != nil {
					return err
				}
				return c.WaitReady(30 * time.Second)
			},
			describe: func(node int) string { return fmt.Sprintf("node n%d of 3", node+1) },
		}
	} else {
		s := natstest.Start(t)
		e.nats = natsUnderTest{urls: s.URL, js: s.JS, replicas: 1,
			restart:  func(_ int, down time.Duration) error { return s.Restart(down) },
			describe: func(int) string { return "the single server" },
		}
	}
	var err error
	e.plane, err = plane.Open(context.Background(), e.nats.js)
	require.NoError(t, err)
	e.rec.watch(e.nats.js)

	urls := map[string]string{}
	for _, name := range []string{"a", "b"} {
		hook := capture.New(capture.Options{})
		url, err := hook.Start("127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(hook.Close)
		e.dests = append(e.dests, checkedDest{name: "hook_" + name, sync: "items_" + name, hook: hook})
		urls[name] = url
	}

	e.adminAddr = freeAddr(t)
	e.ps = newProcs(t, e.nats.urls, "EBB_ACK_WAIT="+historyAckWait)
	for _, svc := range chaosServices {
		e.ps.start(svc, svc, "--listen", e.adminAddr, "--replicas", strconv.Itoa(e.nats.replicas))
	}
	e.admin = adminClient(t, e.adminAddr)

	yaml := strings.NewReplacer("DSN", e.pg.DSN, "URL_A", urls["a"], "URL_B", urls["b"], "DELIVERY", historyDelivery,
		"MODEL", historyModelSQL).Replace(historyYAML)
	file := filepath.Join(t.TempDir(), "ebb.yaml")
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o600))
	waitFor(t, 60*time.Second, func() bool {
		_, err := e.cli("apply", "-f", file)
		return err == nil
	}, "ebb apply -f succeeds once the admin API is up")
	return e
}

func historyScenarioRun(t *testing.T, sc historyScenario, p historyParams, rng *rand.Rand) {
	start := time.Now()
	e := setupHistory(t, sc, p.rows)
	replay := fmt.Sprintf("replay with HISTORY_SEED=%d HISTORY_ROWS=%d HISTORY_DURATION=%s HISTORY_SCENARIOS=%s", p.seed, p.rows, p.duration, sc.name)
	e.rec.logf("%s: set up in %s; chaos for %s", sc.name, time.Since(start).Round(time.Millisecond), sc.duration)

	if p.only != nil {
		replay += " HISTORY_DISRUPTIONS=" + strings.Join(slices.Sorted(maps.Keys(p.only)), ",")
		sc.must = slices.DeleteFunc(slices.Clone(sc.must), func(s string) bool { return !p.only[s] })
		sc.requirePhases = false
	}
	d := &driver{env: e, rng: rng, must: append([]string(nil), sc.must...), only: p.only}
	rng.Shuffle(len(d.must), func(i, j int) { d.must[i], d.must[j] = d.must[j], d.must[i] })
	d.chaos(sc.duration)
	e.rec.logf("chaos over: kills %v, phases hit %v, restarts %v, not done: %v", e.rec.killCounts(), e.rec.phasesHit(), e.restarts, d.must)

	c := &checker{rec: e.rec}
	settled := d.settle(c, max(45*time.Second, sc.duration))
	e.rec.logf("settled=%v after %s", settled, time.Since(start).Round(time.Millisecond))

	var err error
	c.model, err = e.model.rows()
	require.NoError(t, err)
	c.history, err = e.model.history()
	require.NoError(t, err)
	for _, dst := range e.dests {
		c.checkDestination(dst)
	}
	c.checkRuns()
	if sc.requirePhases {
		hit := e.rec.phasesHit()
		for _, phase := range []string{"diffing", "extracting", "delivering", "committing"} {
			if hit[phase] == 0 {
				c.add(violation{invariant: invCoverage, detail: fmt.Sprintf("no kill landed while a run was %s (kills: %v)", phase, e.rec.killCounts())})
			}
		}
	}
	for _, what := range []string{"nats", "postgres"} {
		if slices.Contains(sc.must, map[string]string{"nats": disRestartNATS, "postgres": disRestartPG}[what]) && e.restarts[what] == 0 {
			c.add(violation{invariant: invCoverage, detail: fmt.Sprintf("%s was never restarted mid-run", what)})
		}
	}
	for _, dst := range e.dests {
		e.rec.logf("%s: %d records received, %d duplicate batches, %d throttled, %d flaked, %d rejected; runs:\n  %s",
			dst.name, len(dst.hook.Records()), dst.hook.DuplicateBatches(), dst.hook.Throttled(), dst.hook.Flaked(), dst.hook.Rejected(),
			strings.Join(e.rec.runsOf(dst.sync), "\n  "))
	}
	c.report(t, replay)
	t.Logf("%s took %s", sc.name, time.Since(start).Round(time.Millisecond))
}
