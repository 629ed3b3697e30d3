package warehouse_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/duckdb"
	"github.com/ebb-etl/ebb/libs/source/duckdb/ducktest"
	"github.com/ebb-etl/ebb/libs/source/postgres"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	"github.com/ebb-etl/ebb/libs/source/redshift"
	"github.com/ebb-etl/ebb/libs/source/redshift/rstest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// fixture is one warehouse with the engine's tables in a schema of the
// test's own, and an object store for the local engine.
type fixture struct {
	t   *testing.T
	env sourcetest.Env
	w   source.Warehouse
	obs jetstream.ObjectStore
	n   int
}

func newFixture(t *testing.T, env sourcetest.Env) *fixture {
	ctx := context.Background()
	cfg := maps.Clone(env.Config)
	if env.Prefix != "" {
		cfg["snapshot_schema"] = strings.TrimSuffix(env.Prefix, ".") // dropped with the test's schema
	}
	env.Config = cfg
	ns := natstest.Start(t)
	obs, err := ns.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	require.NoError(t, err)
	f := &fixture{t: t, env: env, obs: obs}
	f.w = f.open()
	require.NoError(t, f.w.ProbeSchema(ctx))
	return f
}

// openers open each type of source as a Warehouse, with a config that
// may differ from the Env's (env.Open closes over the original map).
// Tests of other warehouses register theirs in init.
var openers = map[string]func(ctx context.Context, cfg map[string]any) (source.Warehouse, error){
	"postgres": func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return postgres.Open(ctx, cfg)
	},
	"redshift": func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return redshift.Open(ctx, cfg)
	},
	"duckdb": func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) { return duckdb.Open(ctx, cfg) },
}

// open opens the source with the fixture's config.
func (f *fixture) open() source.Warehouse {
	open, ok := openers[f.env.Type]
	require.True(f.t, ok, "no opener for %s", f.env.Type)
	src, err := open(context.Background(), f.env.Config)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { src.Close() })
	return src
}

func (f *fixture) exec(sql string) {
	f.t.Helper()
	require.NoError(f.t, f.env.Exec(context.Background(), sql), sql)
}

// row is a model row: a composite key and two values.
type row struct {
	a    int
	b    string
	v    *string
	d    string
	seen bool
}

// alphabet mixes cases, accents, emoji, quotes and separators: text keys
// must order byte by byte in both engines.
var alphabet = []string{"a", "A", "b", "B", "é", "É", "ü", "🚀", " ", `"`, "'", ",", "(", "z", "Z", "_"}

func randomText(r *rand.Rand) string {
	var s strings.Builder
	for range r.IntN(4) {
		s.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return s.String()
}

func randomValue(r *rand.Rand) (*string, string) {
	var v *string
	if r.IntN(5) > 0 {
		s := randomText(r)
		v = &s
	}
	return v, fmt.Sprintf("%d.%03d", r.IntN(1000)-500, r.IntN(1000))
}

type table map[string]row

func keyOf(a int, b string) string { return fmt.Sprintf("%d|%s", a, b) }

func randomTable(r *rand.Rand, n int) table {
	t := table{}
	for len(t) < n {
		x := row{a: r.IntN(20) - 5, b: randomText(r)}
		x.v, x.d = randomValue(r)
		t[keyOf(x.a, x.b)] = x
	}
	return t
}

// edit changes, deletes and adds rows.
func edit(r *rand.Rand, t table) table {
	out := table{}
	for k, x := range t {
		switch r.IntN(10) {
		case 0: // deleted
		case 1, 2:
			x.v, x.d = randomValue(r)
			out[k] = x
		default:
			out[k] = x
		}
	}
	for k, x := range randomTable(r, len(t)/5) {
		if _, ok := out[k]; !ok {
			out[k] = x
		}
	}
	return out
}

func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// write replaces the model table's rows with t.
func (f *fixture) write(t table) {
	f.exec("DROP TABLE IF EXISTS " + f.env.Table("model"))
	f.exec("CREATE TABLE " + f.env.Table("model") + " (a INTEGER, b VARCHAR, v VARCHAR, d DECIMAL(12,3))")
	var values []string
	for _, x := range t {
		v := "NULL"
		if x.v != nil {
			v = quoteText(*x.v)
		}
		values = append(values, fmt.Sprintf("(%d, %s, %s, %s)", x.a, quoteText(x.b), v, x.d))
	}
	if len(values) > 0 {
		f.exec("INSERT INTO " + f.env.Table("model") + " VALUES " + strings.Join(values, ", "))
	}
}

func (f *fixture) model() source.Model {
	return source.Model{SQL: "SELECT a, b, v, d FROM " + f.env.Table("model"), PrimaryKey: []string{"a", "b"}}
}

func (f *fixture) name() string { f.n++; return fmt.Sprintf("obj%d", f.n) }

// entries reads a sorted object as "key=payload" lines, in order.
func (f *fixture) entries(name string, payload int) []string {
	r, err := snapshot.Open(context.Background(), f.obs, name, payload)
	require.NoError(f.t, err)
	defer r.Close()
	var out []string
	for {
		ok, err := r.Next()
		require.NoError(f.t, err)
		if !ok {
			return out
		}
		out = append(out, r.Key().String()+"="+hex.EncodeToString(r.Value()))
	}
}

// localDiff runs the local engine; it returns the candidate object, the
// change set and the stats.
func (f *fixture) localDiff(prev string, mode config.Mode, opts diff.Options) (string, []string, diff.Stats) {
	ctx := context.Background()
	pr, err := snapshot.Open(ctx, f.obs, prev, snapshot.SnapshotPayload)
	require.NoError(f.t, err)
	defer pr.Close()
	cand, chg := f.name(), f.name()
	next := snapshot.Create(ctx, f.obs, cand, snapshot.SnapshotPayload)
	changes := snapshot.Create(ctx, f.obs, chg, snapshot.ChangesPayload)
	st, err := diff.ComputeWith(ctx, f.w, f.model(), mode, opts, pr, next, changes)
	require.NoError(f.t, err)
	require.NoError(f.t, next.Close())
	require.NoError(f.t, changes.Close())
	return cand, f.entries(chg, snapshot.ChangesPayload), st
}

// warehouseDiff runs the warehouse engine for a new run id.
func (f *fixture) warehouseDiff(prev warehouse.Previous, mode config.Mode, opts diff.Options) (warehouse.Tables, []string, diff.Stats) {
	ctx := context.Background()
	tables := warehouse.RunTables("tag123", "sync-under_test", run.NewID())
	chg := f.name()
	changes := snapshot.Create(ctx, f.obs, chg, snapshot.ChangesPayload)
	st, err := warehouse.Diff(ctx, f.w, f.model(), mode, opts, prev, tables, changes)
	require.NoError(f.t, err)
	require.NoError(f.t, changes.Close())
	return tables, f.entries(chg, snapshot.ChangesPayload), st
}

// export reads a snapshot table as entries.
func (f *fixture) export(table string) []string {
	name := f.name()
	out := snapshot.Create(context.Background(), f.obs, name, snapshot.SnapshotPayload)
	require.NoError(f.t, warehouse.Export(context.Background(), f.w, table, 2, out))
	require.NoError(f.t, out.Close())
	return f.entries(name, snapshot.SnapshotPayload)
}

func (f *fixture) reader(name string) *snapshot.Reader {
	r, err := snapshot.Open(context.Background(), f.obs, name, snapshot.SnapshotPayload)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { r.Close() })
	return r
}

func sameStats(t *testing.T, want, got diff.Stats, msg string) {
	t.Helper()
	require.Equal(t, []int64{want.Rows, want.Adds, want.Changes, want.Deletes},
		[]int64{got.Rows, got.Adds, got.Changes, got.Deletes}, msg)
}

// randomKeys picks about share of the keys of the snapshot entries.
func randomKeys(r *rand.Rand, f *fixture, objects []string, share float64) map[string]bool {
	out := map[string]bool{}
	for _, obj := range objects {
		rd := f.reader(obj)
		for {
			ok, err := rd.Next()
			require.NoError(f.t, err)
			if !ok {
				break
			}
			if r.Float64() < share {
				out[string(rd.Key())] = true
			}
		}
	}
	return out
}

// testEnginesAgree: random tables and random edits give the same change
// set, stats and snapshot under both engines, in every mode, with
// quarantined keys; a snapshot moves between the engines unchanged; and a
// commit keeps the old entry of failed keys in both.
func testEnginesAgree(t *testing.T, env sourcetest.Env) {
	f := newFixture(t, env)
	for round := range 3 {
		r := rand.New(rand.NewPCG(uint64(round), 42))
		v1 := randomTable(r, 150+r.IntN(150))
		f.write(v1)
		for _, mode := range config.Modes {
			msg := fmt.Sprintf("round %d, first run, mode %s", round, mode)
			_, lc, ls := f.localDiff("", mode, diff.Options{})
			_, wc, ws := f.warehouseDiff(warehouse.Previous{}, mode, diff.Options{})
			require.Equal(t, lc, wc, msg)
			sameStats(t, ls, ws, msg)
		}
		local1, _, _ := f.localDiff("", config.ModeMirror, diff.Options{})
		wh1, _, _ := f.warehouseDiff(warehouse.Previous{}, config.ModeMirror, diff.Options{})
		require.Equal(t, f.entries(local1, snapshot.SnapshotPayload), f.export(wh1.Snapshot), "round %d: same snapshot", round)

		v2 := edit(r, v1)
		f.write(v2)
		// Round 1 also resends every common key, as after a type change.
		opts := diff.Options{ResendCommon: round == 1}
		if round > 0 {
			opts.Skip = randomKeys(r, f, []string{local1}, 0.05)
		}
		for _, mode := range config.Modes {
			msg := fmt.Sprintf("round %d, second run, mode %s", round, mode)
			_, lc, ls := f.localDiff(local1, mode, opts)
			_, wc, ws := f.warehouseDiff(warehouse.Previous{Table: wh1.Snapshot}, mode, opts)
			require.Equal(t, lc, wc, msg)
			sameStats(t, ls, ws, msg)
			// After local runs: the object is loaded into a table.
			_, mc, ms := f.warehouseDiff(warehouse.Previous{Object: f.reader(local1)}, mode, opts)
			require.Equal(t, lc, mc, msg+", from the local engine's snapshot")
			sameStats(t, ls, ms, msg+", from the local engine's snapshot")
		}

		// Invariant 1: failed keys keep their old entry (or absence).
		local2, _, _ := f.localDiff(local1, config.ModeMirror, diff.Options{})
		wh2, _, _ := f.warehouseDiff(warehouse.Previous{Table: wh1.Snapshot}, config.ModeMirror, diff.Options{})
		keep := randomKeys(r, f, []string{local1, local2}, 0.1)
		committed := f.name()
		out := snapshot.Create(context.Background(), f.obs, committed, snapshot.SnapshotPayload)
		require.NoError(t, diff.Commit(f.reader(local1), f.reader(local2), keep, out))
		require.NoError(t, out.Close())
		rows, err := warehouse.Patch(context.Background(), f.w, wh2, wh1.Snapshot, 2, keep)
		require.NoError(t, err)
		want := f.entries(committed, snapshot.SnapshotPayload)
		require.Equal(t, want, f.export(wh2.Snapshot), "round %d: committed snapshot", round)
		require.EqualValues(t, len(want), rows)
		// A commit resumed after a crash patches again: same result.
		_, err = warehouse.Patch(context.Background(), f.w, wh2, wh1.Snapshot, 2, keep)
		require.NoError(t, err)
		require.Equal(t, want, f.export(wh2.Snapshot), "round %d: patched twice", round)
	}
}

func TestEnginesAgreePostgres(t *testing.T) { testEnginesAgree(t, pgtest.Env(t)) }
func TestEnginesAgreeDuckDB(t *testing.T)   { testEnginesAgree(t, ducktest.Env(t)) }
func TestEnginesAgreeRedshift(t *testing.T) { testEnginesAgree(t, rstest.Env(t)) }

// testKeyErrors: NULL and duplicate keys fail the diff as in the local
// engine, naming the first offender.
func testKeyErrors(t *testing.T, env sourcetest.Env) {
	f := newFixture(t, env)
	f.exec("CREATE TABLE " + f.env.Table("model") + " (a INTEGER, b VARCHAR, v VARCHAR, d DECIMAL(12,3))")
	f.exec("INSERT INTO " + f.env.Table("model") + " VALUES (1, 'x', NULL, 0), (2, 'y', NULL, 0), (2, 'y', NULL, 1), (NULL, 'z', NULL, 0)")
	tables := warehouse.RunTables("tag123", "s", run.NewID())
	changes := snapshot.Create(context.Background(), f.obs, f.name(), snapshot.ChangesPayload)
	_, err := warehouse.Diff(context.Background(), f.w, f.model(), config.ModeMirror, diff.Options{}, warehouse.Previous{}, tables, changes)
	changes.Abort(err)
	var ke *diff.KeyError
	require.ErrorAs(t, err, &ke)
	require.Equal(t, "model has 1 duplicate primary keys (first: 2,y) and 1 rows with a NULL in the primary key (first: NULL,z); nothing was sent", err.Error())

	// A one-column key is counted another way (count(DISTINCT k1)).
	one := source.Model{SQL: "SELECT a, v FROM " + f.env.Table("model"), PrimaryKey: []string{"a"}}
	changes = snapshot.Create(context.Background(), f.obs, f.name(), snapshot.ChangesPayload)
	_, err = warehouse.Diff(context.Background(), f.w, one, config.ModeMirror, diff.Options{}, warehouse.Previous{}, tables, changes)
	changes.Abort(err)
	require.ErrorAs(t, err, &ke)
	require.Equal(t, "model has 1 duplicate primary keys (first: 2) and 1 rows with a NULL in the primary key (first: NULL); nothing was sent", err.Error())
}

func TestKeyErrorsPostgres(t *testing.T) { testKeyErrors(t, pgtest.Env(t)) }
func TestKeyErrorsDuckDB(t *testing.T)   { testKeyErrors(t, ducktest.Env(t)) }
func TestKeyErrorsRedshift(t *testing.T) { testKeyErrors(t, rstest.Env(t)) }

// testClean: the janitor drops the tables of runs that are over, keeps
// those of active runs and committed snapshots, and leaves other tables.
func testClean(t *testing.T, env sourcetest.Env) {
	f := newFixture(t, env)
	f.write(randomTable(rand.New(rand.NewPCG(1, 2)), 20))
	committed, _, _ := f.warehouseDiff(warehouse.Previous{}, config.ModeMirror, diff.Options{})
	active, _, _ := f.warehouseDiff(warehouse.Previous{Table: committed.Snapshot}, config.ModeMirror, diff.Options{})
	over, _, _ := f.warehouseDiff(warehouse.Previous{Table: committed.Snapshot}, config.ModeMirror, diff.Options{})
	f.exec("CREATE TABLE " + f.w.Table("not_ours") + " (i INTEGER)")
	other := warehouse.RunTables("tag456", "sync-under_test", run.NewID()).Snapshot // another deployment's
	f.exec("CREATE TABLE " + f.w.Table(other) + " (i INTEGER)")
	_, activeRun := warehouse.RunOf(active.Snapshot)
	dropped, err := warehouse.Clean(context.Background(), f.w, "tag123",
		func(id string) (bool, error) { return id == activeRun, nil },
		func() (map[string]bool, error) { return map[string]bool{committed.Snapshot: true}, nil })
	require.NoError(t, err)
	require.ElementsMatch(t, []string{committed.Changes, committed.Previous, over.Changes, over.Snapshot}, dropped)
	tables, err := f.w.Tables(context.Background())
	require.NoError(t, err)
	want := []string{committed.Snapshot, active.Snapshot, active.Changes, "not_ours", other}
	if env.Prefix != "" {
		want = append(want, "model") // the snapshot schema is the test's schema
	}
	require.ElementsMatch(t, want, tables)
}

func TestCleanPostgres(t *testing.T) { testClean(t, pgtest.Env(t)) }
func TestCleanDuckDB(t *testing.T)   { testClean(t, ducktest.Env(t)) }
func TestCleanRedshift(t *testing.T) { testClean(t, rstest.Env(t)) }

func TestRunTables(t *testing.T) {
	id := run.NewID()
	long := strings.Repeat("customers-to-crm", 4)
	tables := warehouse.RunTables("abc123", long, id)
	for _, name := range []string{tables.Snapshot, tables.Changes, tables.Previous, tables.Keys} {
		require.LessOrEqual(t, len(name), 63, name)
		tag, runID := warehouse.RunOf(name)
		require.Equal(t, []string{"abc123", id}, []string{tag, runID})
	}
	require.NotEqual(t, tables.Snapshot, warehouse.RunTables("abc123", long+"x", id).Snapshot, "syncs with the same beginning differ")
	for _, other := range []string{"customers", "probe_123", "snap_customers", "snap_abc123_" + strings.ToLower(id)} {
		_, runID := warehouse.RunOf(other)
		require.Empty(t, runID, other)
	}
}
