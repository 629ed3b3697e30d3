package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	srcbuiltin "github.com/ebb-etl/ebb/libs/source/builtin"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// The chaos test's delivery settings. They fix the in-flight window, and so
// the bound on duplicates.
const (
	chaosBatchSize  = 100
	chaosPartitions = 2
	chaosAckWindow  = 4
)

// chaosServices are killed at random; each runs as its own process.
var chaosServices = []string{"scheduler", "differ", "extractor", "transformer", "delivery", "reporting", "admin"}

const chaosYAML = `
sources:
  - name: wh
    type: postgres
    config: { dsn: "%[1]s", snapshot_schema: %[6]s }
destinations:
  - name: hook
    type: webhook
    config: { url: "%[2]s", batch_size: %[3]d, partitions: %[4]d, ack_window: %[5]d, timeout: 10s }
syncs:
  - name: items
    source: wh
    destination: hook
    model: { sql: "SELECT id, name, score, note FROM %[6]s.items", primary_key: [id] }
    mode: mirror
    schedule: manual
    engine: %[7]s
`

// chaosParams come from the environment, so `make chaos` can run long.
type chaosParams struct {
	rows     int
	duration time.Duration
	seed     uint64
}

func readChaosParams(t *testing.T) chaosParams {
	p := chaosParams{rows: 20_000, duration: 30 * time.Second, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv("CHAOS_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "CHAOS_ROWS")
		p.rows = n
	}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "CHAOS_DURATION")
		p.duration = d
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CHAOS_SEED")
		p.seed = n
	}
	return p
}

// TestChaos runs every service as its own process of the built binary and,
// while a mirror sync runs, kills a random one with SIGKILL every 1–5 s
// and restarts it (DESIGN invariant 2). Then:
//   - the run succeeds, and its counts are exact (each result counted once);
//   - every row of the model arrived, and the destination equals the model;
//   - the committed snapshot holds exactly the model's keys and row hashes;
//   - duplicates at the destination stay within the in-flight bound below.
//
// It then edits the table (changes, adds, deletes) and runs again under
// chaos: exactly the difference arrives, modulo bounded duplicates.
//
// The duplicate bound. Stages before delivery republish with deterministic
// Nats-Msg-Ids, which the streams' duplicate window drops, so a crash of the
// scheduler, differ, extractor, transformer, reporting or admin sends
// nothing twice to the destination. A crash of delivery resends the batches
// it had not acked: at most ack_window messages per partition, each holding
// at most the records of one extracted batch (batch_size × partitions: a
// batch goes whole to one lane). So per delivery kill at most partitions ×
// ack_window × batch_size × partitions records arrive twice, and with no
// delivery kill there are none.
//
// CHAOS_ROWS (default 20000), CHAOS_DURATION (default 30s, per run; the
// second run gets half), CHAOS_SEED (default: the clock, logged) and
// CHAOS_ENGINE (local, warehouse, or both by default) tune it; `make chaos`
// runs the long variant.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: builds the binary and kills processes for a minute or more")
	}
	engines := []string{"local", "warehouse"}
	if e := os.Getenv("CHAOS_ENGINE"); e != "" && e != "both" {
		engines = []string{e}
	}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { chaosScenario(t, engine) })
	}
}

func chaosScenario(t *testing.T, engine string) {
	params := readChaosParams(t)
	t.Logf("chaos: rows=%d duration=%s seed=%d (rerun with CHAOS_SEED=%d)", params.rows, params.duration, params.seed, params.seed)
	rng := rand.New(rand.NewPCG(params.seed, params.seed^0x9e3779b97f4a7c15))

	pg := newPGSchema(t)
	pg.exec(`CREATE TABLE $S.items (id bigint PRIMARY KEY, name text, score numeric(12,4), note text)`)
	pg.exec(`INSERT INTO $S.items SELECT i, 'name ' || i || ' ✓', (i * 1.2345)::numeric(12,4),
		CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END FROM generate_series(1, $1::int) AS i`, params.rows)
	model := func() map[string]map[string]any {
		return pg.rows(`SELECT json_build_object('id', id)::text,
			json_build_object('id', id, 'name', name, 'score', score, 'note', note)::text FROM $S.items`)
	}

	hook := capture.New(capture.Options{})
	hookURL, err := hook.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(hook.Close)

	ns := natstest.Start(t)
	pl, err := plane.Open(context.Background(), ns.JS)
	require.NoError(t, err)
	adminAddr := freeAddr(t)
	ps := newProcs(t, ns.URL)
	for _, svc := range chaosServices {
		ps.start(svc, svc, "--listen", adminAddr)
	}
	admin := adminClient(t, adminAddr)

	file := filepath.Join(t.TempDir(), "ebb.yaml")
	yaml := fmt.Sprintf(chaosYAML, postgresDSN(), hookURL, chaosBatchSize, chaosPartitions, chaosAckWindow, pg.schema, engine)
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o600))
	waitFor(t, 30*time.Second, func() bool {
		_, err := ebbCmd(t, ps.bin, "apply", "-f", file, "--server", adminAddr)
		return err == nil
	}, "ebb apply -f succeeds once the admin API is up")
	src := config.Source{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": postgresDSN()}}
	m := config.Model{SQL: "SELECT id, name, score, note FROM " + pg.schema + ".items", PrimaryKey: []string{"id"}}

	// Run 1: every row is an add.
	before := model()
	c1 := chaosRun(t, ps, admin, hook, rng, params.duration, len(before))
	r1 := c1.run
	require.Equal(t, "succeeded", r1.GetState(), r1.GetError())
	require.EqualValues(t, params.rows, r1.GetPlanned().GetAdds())
	require.EqualValues(t, params.rows, r1.GetAdds().GetDelivered(), "each record counted once despite redeliveries")
	got := receivedByKey(t, hook, r1.GetId())
	want := map[string]sent{}
	for k, row := range before {
		want[k] = sent{op: record.OpUpsert, data: row}
	}
	require.Equal(t, len(want), len(got.byKey), "every row arrived")
	requireSent(t, want, got)
	c1.requireDuplicatesBounded(t, got)
	require.Equal(t, before, hook.State(), "the destination equals the model")
	requireCommitted(t, pl, pg, r1.GetId(), "items", src, m)

	// Run 2: change, add and delete rows; exactly the difference arrives.
	pg.exec(`UPDATE $S.items SET score = score + 1, note = 'changed' WHERE id % 10 = 3`)
	pg.exec(`INSERT INTO $S.items SELECT i, 'new ' || i, 0, NULL FROM generate_series($1::int + 1, $1::int + $1::int / 20) AS i`, params.rows)
	pg.exec(`DELETE FROM $S.items WHERE id % 50 = 7`)
	after := model()
	want = map[string]sent{}
	var adds, changes, deletes int64
	for k, row := range after {
		old, ok := before[k]
		switch {
		case !ok:
			adds++
		case !reflect.DeepEqual(old, row):
			changes++
		default:
			continue
		}
		want[k] = sent{op: record.OpUpsert, data: row}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			deletes++
			want[k] = sent{op: record.OpDelete}
		}
	}
	c2 := chaosRun(t, ps, admin, hook, rng, params.duration/2, len(want))
	r2 := c2.run
	require.Equal(t, "succeeded", r2.GetState(), r2.GetError())
	require.Equal(t, []int64{adds, changes, deletes}, []int64{r2.GetPlanned().GetAdds(), r2.GetPlanned().GetChanges(), r2.GetPlanned().GetDeletes()})
	require.Equal(t, []int64{adds, changes, deletes}, []int64{r2.GetAdds().GetDelivered(), r2.GetChanges().GetDelivered(), r2.GetDeletes().GetDelivered()})
	got = receivedByKey(t, hook, r2.GetId())
	requireSent(t, want, got)
	c2.requireDuplicatesBounded(t, got)
	require.Equal(t, after, hook.State(), "the destination equals the model")
	requireCommitted(t, pl, pg, r2.GetId(), "items", src, m)
}

// chaosResult is one run under chaos and what was killed meanwhile.
type chaosResult struct {
	run   *adminv1.Run
	kills map[string]int
}

// chaosRun starts a run of "items" and kills a random service every 1–5 s
// until the run ends or d passes; then it restarts anything down and waits
// for the run to end. The webhook is slowed so that, undisturbed, the run
// would take about half of d: the kills land while it works.
func chaosRun(t *testing.T, ps *procs, admin adminv1.AdminServiceClient, hook *capture.Server, rng *rand.Rand, d time.Duration, records int) chaosResult {
	t.Helper()
	requests := max(records/chaosBatchSize, 1)
	latency := d / 2 * chaosPartitions * chaosAckWindow / time.Duration(requests)
	hook.SetLatency(min(latency, 3*time.Second))

	var runID string
	waitFor(t, 30*time.Second, func() bool {
		resp, err := admin.TriggerRun(context.Background(), &adminv1.TriggerRunRequest{Sync: "items"})
		if err != nil {
			return false
		}
		runID = resp.GetRun().GetId()
		return true
	}, "triggering a run")
	t.Logf("run %s: %d records planned, webhook latency %s", runID, records, min(latency, 3*time.Second))

	var last *adminv1.Run
	poll := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := admin.GetRun(ctx, &adminv1.GetRunRequest{RunId: runID})
		if err != nil {
			return false // the admin service may be the one just killed
		}
		last = resp.GetRun()
		switch last.GetState() {
		case "succeeded", "failed", "cancelled":
			return true
		}
		return false
	}

	start := time.Now()
	kills := map[string]int{}
	// The pace of the chaos: a kill every 1–5 s, drawn from the seed.
	pause := func() time.Duration { return time.Second + time.Duration(rng.Int64N(int64(4*time.Second))) }
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	next := time.Now().Add(pause())
	for !poll() && time.Since(start) < d {
		<-tick.C
		if time.Now().Before(next) {
			continue
		}
		svc := chaosServices[rng.IntN(len(chaosServices))]
		kills[svc]++
		t.Logf("%6.1fs kill -9 %s (state %s, %d batches at the webhook)", time.Since(start).Seconds(), svc, last.GetState(), hook.Batches())
		ps.restart(svc)
		next = time.Now().Add(pause())
	}
	t.Logf("chaos over after %s: kills %v", time.Since(start).Round(100*time.Millisecond), kills)
	hook.SetLatency(0)
	waitFor(t, 5*time.Minute, poll, "run %s did not end after the chaos (last state %s)", runID, last.GetState())
	t.Logf("run %s %s after %s: planned %v, adds %v, changes %v, deletes %v", runID, last.GetState(),
		time.Since(start).Round(100*time.Millisecond), last.GetPlanned(), last.GetAdds(), last.GetChanges(), last.GetDeletes())
	for _, svc := range chaosServices {
		require.True(t, ps.running(svc), "service %s exited on its own", svc)
	}
	return chaosResult{run: last, kills: kills}
}

// sent is what a key's record carried.
type sent struct {
	op   record.Op
	data map[string]any
}

// received is what the webhook got for one run.
type received struct {
	byKey   map[string][]sent
	records int
}

func receivedByKey(t *testing.T, hook *capture.Server, runID string) received {
	t.Helper()
	got := received{byKey: map[string][]sent{}}
	for _, rec := range hook.Records() {
		if rec.RunID != runID {
			continue
		}
		k := capture.KeyString(rec.Key)
		got.byKey[k] = append(got.byKey[k], sent{op: rec.Op, data: rec.Data})
		got.records++
	}
	return got
}

// requireSent checks that exactly the wanted keys arrived, each with the
// wanted op and data, every copy of a duplicate identical.
func requireSent(t *testing.T, want map[string]sent, got received) {
	t.Helper()
	for k, w := range want {
		copies, ok := got.byKey[k]
		require.True(t, ok, "record %s never arrived", k)
		for _, c := range copies {
			require.Equal(t, w.op, c.op, "op of %s", k)
			if w.op != record.OpDelete {
				require.Equal(t, w.data, c.data, "data of %s", k)
			}
		}
	}
	for k := range got.byKey {
		_, ok := want[k]
		require.True(t, ok, "record %s arrived but is not in the change set", k)
	}
}

// requireDuplicatesBounded checks the duplicates against the in-flight
// window of the delivery kills (see TestChaos).
func (c chaosResult) requireDuplicatesBounded(t *testing.T, got received) {
	t.Helper()
	dups := got.records - len(got.byKey)
	perKill := chaosPartitions * chaosAckWindow * min(chaosBatchSize*chaosPartitions, 10_000)
	bound := c.kills["delivery"] * perKill
	t.Logf("duplicates: %d records (bound %d = %d delivery kills × %d partitions × %d ack_window × %d records per batch)",
		dups, bound, c.kills["delivery"], chaosPartitions, chaosAckWindow, min(chaosBatchSize*chaosPartitions, 10_000))
	require.LessOrEqual(t, dups, bound, "duplicates beyond the in-flight window of the crashes")
}

// requireCommitted checks the sync's committed snapshot: it is the run's,
// and it holds exactly the model's keys with the model's row hashes.
func requireCommitted(t *testing.T, pl *plane.Plane, pg *pgSchema, runID, sync string, src config.Source, m config.Model) {
	t.Helper()
	ctx := context.Background()
	ptr, _, err := snapshot.LoadPointer(ctx, pl.State, sync)
	require.NoError(t, err)
	require.Equal(t, runID, ptr.RunID, "the run's snapshot is the committed one")
	if ptr.Engine == "warehouse" {
		requireCommittedTable(t, pg, ptr, src, m)
		return
	}
	s, err := srcbuiltin.Open(ctx, src)
	require.NoError(t, err)
	defer s.Close()
	var keys []string
	hashes := map[string]string{}
	require.NoError(t, s.ScanHashes(ctx, source.Model{SQL: m.SQL, PrimaryKey: m.PrimaryKey}, func(key record.Key, hash []byte) error {
		keys = append(keys, string(key))
		hashes[string(key)] = string(hash)
		return nil
	}))
	rd, err := snapshot.Open(ctx, pl.Snapshots, ptr.Object, snapshot.SnapshotPayload)
	require.NoError(t, err)
	defer rd.Close()
	i := 0
	for {
		ok, err := rd.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		require.Less(t, i, len(keys), "the snapshot has more keys than the model")
		require.Equal(t, keys[i], string(rd.Key()), "snapshot entry %d", i)
		require.Equal(t, hashes[keys[i]], string(rd.Value()), "hash of %s", rd.Key())
		i++
	}
	require.Equal(t, len(keys), i, "the snapshot has every key of the model")
	require.EqualValues(t, len(keys), ptr.Rows)
}

// requireCommittedTable checks a warehouse-engine snapshot: the table in
// the source's snapshot schema holds exactly the model's keys (k1, one
// bigint key here) and row hashes (h).
func requireCommittedTable(t *testing.T, pg *pgSchema, ptr snapshot.Pointer, src config.Source, m config.Model) {
	t.Helper()
	ctx := context.Background()
	s, err := srcbuiltin.Open(ctx, src)
	require.NoError(t, err)
	defer s.Close()
	want := map[int64]string{}
	require.NoError(t, s.ScanHashes(ctx, source.Model{SQL: m.SQL, PrimaryKey: m.PrimaryKey}, func(key record.Key, hash []byte) error {
		parts, err := key.Parts()
		if err != nil {
			return err
		}
		want[parts[0].(int64)] = string(hash)
		return nil
	}))
	rows, err := pg.pool.Query(ctx, "SELECT k1, h FROM "+pg.schema+"."+ptr.Table)
	require.NoError(t, err)
	got := map[int64]string{}
	for rows.Next() {
		var k int64
		var h []byte
		require.NoError(t, rows.Scan(&k, &h))
		got[k] = string(h)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(want), len(got), "the snapshot table has every key of the model, once")
	for k, h := range want {
		require.Equal(t, h, got[k], "hash of key %d in the committed table", k)
	}
	require.EqualValues(t, len(want), ptr.Rows)
}
