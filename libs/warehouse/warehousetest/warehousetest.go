// Package warehousetest checks the `warehouse` diff engine against the
// `local` one on a warehouse reached through a source: the tests of
// Snowflake, BigQuery and Redshift run it against the real warehouses when
// their credentials are set (their local stand-ins are covered by package
// warehouse's own tests).
//
// A test creates the model table, empty, in its warehouse's dialect and
// describes it with a Model; Agree fills it, diffs it twice under both
// engines, commits with failed keys and cleans up. It imports no source
// package, so the sources' tests can import it.
package warehousetest

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// Model is the model table a test created, empty, with four columns: an
// integer and a text column making up the primary key, a nullable text
// column and an exact decimal column (scale 3 or more).
type Model struct {
	// Table names the table in the warehouse's SQL (qualified, quoted
	// where the dialect needs it).
	Table string
	// Org and Name are the key columns (integer, text), Note the nullable
	// text column, Amount the decimal: as the model's SELECT returns them
	// (the primary key must match them exactly, so upper case in
	// Snowflake), usable unquoted in SQL.
	Org, Name, Note, Amount string
	// Text renders a string literal: StandardText, or the dialect's.
	Text func(s string) string
	// Decimal renders a decimal literal from its text ("-12.345"); nil
	// writes the text as it is.
	Decimal func(s string) string
}

// StandardText is a string literal in standard SQL: single quotes, with
// quotes doubled. The generated texts have no backslash, which some
// dialects treat as an escape.
func StandardText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Tag is the deployment tag of the engine's tables in these tests.
const Tag = "ebbtst"

// rowsV1 is the size of the first version of the table.
const rowsV1 = 200

// alphabet mixes cases, accents, emoji, CJK, quotes and separators: text
// keys must order byte by byte under both engines.
var alphabet = []string{"a", "A", "b", "B", "é", "É", "ü", "Ü", "ß", "日", "🚀", " ", `"`, "'", ",", "(", "z", "Z", "_"}

// randomText is up to 4 letters, never ending in a space: Redshift
// compares VARCHARs ignoring trailing blanks, so "a" and "a " would be one
// key to its joins and two to the local engine.
func randomText(r *rand.Rand) string {
	var s strings.Builder
	for range r.IntN(5) {
		s.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return strings.TrimRight(s.String(), " ")
}

// row is a model row.
type row struct {
	org    int
	name   string
	note   *string
	amount string
}

func randomRow(r *rand.Rand) row {
	x := row{org: r.IntN(20) - 5, name: randomText(r), amount: fmt.Sprintf("%d.%03d", r.IntN(1000)-500, r.IntN(1000))}
	if r.IntN(5) > 0 {
		s := randomText(r)
		x.note = &s
	}
	return x
}

func (x row) key() string { return fmt.Sprintf("%d|%s", x.org, x.name) }

// checker runs both engines on one warehouse, with the local engine's
// objects in an object store of the test's own.
type checker struct {
	t   *testing.T
	ctx context.Context
	w   source.Warehouse
	m   source.Model
	obs jetstream.ObjectStore
	n   int
}

// Agree fills m's table with about 200 rows and checks, on w (opened with
// the test's own schema or dataset as its "snapshot_schema"), that the
// warehouse engine does what the local engine does:
//
//  1. a first run (no previous snapshot, mode mirror) gives the same
//     change set, in order, and stats, and its snapshot table exports to
//     the local engine's snapshot;
//  2. after rows are updated, deleted and inserted, a second run against
//     the first run's snapshot table gives the change set the local engine
//     computes against its first snapshot, with the expected stats;
//  3. committing run 2 with failed keys (Patch) gives diff.Commit's
//     snapshot, also when patched again;
//  4. Clean, with no run active and run 2's snapshot committed, drops
//     every other table of the engine.
//
// exec runs a statement of the warehouse's dialect on the test's own
// connection.
func Agree(t *testing.T, w source.Warehouse, exec func(sql string), m Model) {
	ctx := context.Background()
	if m.Decimal == nil {
		m.Decimal = func(s string) string { return s }
	}
	require.NoError(t, w.ProbeSchema(ctx))
	ns := natstest.Start(t)
	obs, err := ns.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	require.NoError(t, err)
	c := &checker{t: t, ctx: ctx, w: w, obs: obs, m: source.Model{
		SQL:        fmt.Sprintf("SELECT %s, %s, %s, %s FROM %s", m.Org, m.Name, m.Note, m.Amount, m.Table),
		PrimaryKey: []string{m.Org, m.Name},
	}}

	r := rand.New(rand.NewPCG(2024, 7))
	v1 := map[string]row{}
	for len(v1) < rowsV1 {
		x := randomRow(r)
		v1[x.key()] = x
	}
	m.insert(exec, sorted(v1))

	// Run 1: everything is added.
	local1, lc, ls := c.localDiff("")
	t1, wc, ws := c.warehouseDiff(warehouse.Previous{})
	sameStats(t, diff.Stats{Rows: rowsV1, Adds: rowsV1}, ls, "first run, local engine")
	require.Equal(t, strs(lc), strs(wc), "first run: same change set")
	sameStats(t, ls, ws, "first run")
	require.Equal(t, c.entries(local1, snapshot.SnapshotPayload), c.export(t1.Snapshot), "first run: same snapshot")

	// Run 2, after edits.
	want := m.edit(exec, r, v1)
	local2, lc, ls := c.localDiff(local1)
	t2, wc, ws := c.warehouseDiff(warehouse.Previous{Table: t1.Snapshot})
	sameStats(t, want, ls, "second run, local engine against the edits")
	require.Equal(t, strs(lc), strs(wc), "second run: same change set")
	sameStats(t, ls, ws, "second run")
	t.Logf("second run: %d rows, %d added, %d changed, %d deleted", ws.Rows, ws.Adds, ws.Changes, ws.Deletes)
	require.Equal(t, c.entries(local2, snapshot.SnapshotPayload), c.export(t2.Snapshot), "second run: same snapshot")

	// Commit with failed keys: one of each kind of change, and a key
	// that did not change.
	keep := c.failedKeys(lc, local1, local2)
	committed := c.name()
	out := snapshot.Create(ctx, obs, committed, snapshot.SnapshotPayload)
	require.NoError(t, diff.Commit(c.reader(local1), c.reader(local2), keep, out))
	require.NoError(t, out.Close())
	wantSnap := c.entries(committed, snapshot.SnapshotPayload)
	require.NotEqual(t, c.entries(local2, snapshot.SnapshotPayload), wantSnap, "failed keys change the committed snapshot")
	rows, err := warehouse.Patch(ctx, w, t2, t1.Snapshot, 2, keep)
	require.NoError(t, err)
	require.Equal(t, wantSnap, c.export(t2.Snapshot), "committed snapshot")
	require.EqualValues(t, len(wantSnap), rows)
	_, err = warehouse.Patch(ctx, w, t2, t1.Snapshot, 2, keep) // a commit resumed after a crash
	require.NoError(t, err)
	require.Equal(t, wantSnap, c.export(t2.Snapshot), "patched twice")

	// Clean: no run is active; run 2's snapshot is committed.
	asked := map[string]bool{}
	dropped, err := warehouse.Clean(ctx, w, Tag,
		func(id string) (bool, error) { asked[id] = true; return false, nil },
		func() (map[string]bool, error) { return map[string]bool{t2.Snapshot: true}, nil })
	require.NoError(t, err)
	_, run1 := warehouse.RunOf(t1.Snapshot)
	_, run2 := warehouse.RunOf(t2.Snapshot)
	require.Equal(t, map[string]bool{run1: true, run2: true}, asked)
	require.ElementsMatch(t, []string{t1.Snapshot, t1.Changes, t1.Previous, t2.Changes}, dropped)
	// Listed as the engine's: only the committed snapshot. (Polled, in
	// case a warehouse's table listing lags a DROP for a moment.)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		tables, err := w.Tables(ctx)
		if !assert.NoError(ct, err) {
			return
		}
		var ours []string
		for _, name := range tables {
			if _, id := warehouse.RunOf(name); id != "" {
				ours = append(ours, name)
			}
		}
		assert.Equal(ct, []string{t2.Snapshot}, ours)
	}, 30*time.Second, time.Second, "the engine's tables after Clean")
	require.Equal(t, wantSnap, c.export(t2.Snapshot), "the committed snapshot survives Clean")
}

func sorted(rows map[string]row) []row {
	out := make([]row, 0, len(rows))
	for _, x := range rows {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b row) int { return strings.Compare(a.key(), b.key()) })
	return out
}

// insert writes rows in INSERTs of up to 100 rows.
func (m Model) insert(exec func(string), rows []row) {
	for len(rows) > 0 {
		n := min(len(rows), 100)
		values := make([]string, n)
		for i, x := range rows[:n] {
			note := "NULL"
			if x.note != nil {
				note = m.Text(*x.note)
			}
			values[i] = fmt.Sprintf("(%d, %s, %s, %s)", x.org, m.Text(x.name), note, m.Decimal(x.amount))
		}
		exec(fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s) VALUES %s", m.Table, m.Org, m.Name, m.Note, m.Amount,
			strings.Join(values, ", ")))
		rows = rows[n:]
	}
}

// where matches the rows of keys.
func (m Model) where(keys []row) string {
	conds := make([]string, len(keys))
	for i, x := range keys {
		conds[i] = fmt.Sprintf("(%s = %d AND %s = %s)", m.Org, x.org, m.Name, m.Text(x.name))
	}
	return strings.Join(conds, " OR ")
}

// newNote is the text some notes change to.
const newNote = `Ünïcödé "note" it's 🚀`

// edit updates, deletes and inserts rows of v1, each kind in one
// statement, and returns the stats the second run must find.
func (m Model) edit(exec func(string), r *rand.Rand, v1 map[string]row) diff.Stats {
	var st diff.Stats
	var bump, clear, set, del []row
	for _, x := range sorted(v1) {
		switch r.IntN(20) {
		case 0, 1: // deleted
			del = append(del, x)
			st.Deletes++
			continue
		case 2, 3: // amount + 1: always a change
			bump = append(bump, x)
			st.Changes++
		case 4: // note set to NULL: a change unless it was
			clear = append(clear, x)
			if x.note != nil {
				st.Changes++
			}
		case 5: // note set: a change unless it was that already
			set = append(set, x)
			if x.note == nil || *x.note != newNote {
				st.Changes++
			}
		}
		st.Rows++
	}
	added := map[string]row{}
	for len(added) < 30 {
		x := randomRow(r)
		if _, ok := v1[x.key()]; !ok {
			added[x.key()] = x
		}
	}
	st.Adds, st.Rows = int64(len(added)), st.Rows+int64(len(added))
	if len(bump) > 0 {
		exec(fmt.Sprintf("UPDATE %s SET %s = %s + 1 WHERE %s", m.Table, m.Amount, m.Amount, m.where(bump)))
	}
	if len(clear) > 0 {
		exec(fmt.Sprintf("UPDATE %s SET %s = NULL WHERE %s", m.Table, m.Note, m.where(clear)))
	}
	if len(set) > 0 {
		exec(fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s", m.Table, m.Note, m.Text(newNote), m.where(set)))
	}
	if len(del) > 0 {
		exec(fmt.Sprintf("DELETE FROM %s WHERE %s", m.Table, m.where(del)))
	}
	m.insert(exec, sorted(added))
	return st
}

func (c *checker) name() string { c.n++; return fmt.Sprintf("obj%d", c.n) }

// entry is an object's entry.
type entry struct {
	key   record.Key
	value []byte
}

func (e entry) String() string { return e.key.String() + "=" + hex.EncodeToString(e.value) }

// read reads an object's entries.
func (c *checker) read(name string, payload int) []entry {
	r, err := snapshot.Open(c.ctx, c.obs, name, payload)
	require.NoError(c.t, err)
	defer r.Close()
	var out []entry
	for {
		ok, err := r.Next()
		require.NoError(c.t, err)
		if !ok {
			return out
		}
		out = append(out, entry{append(record.Key(nil), r.Key()...), append([]byte(nil), r.Value()...)})
	}
}

// strs are entries as "key=payload" lines.
func strs(entries []entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.String()
	}
	return out
}

// entries reads an object as "key=payload" lines, in order.
func (c *checker) entries(name string, payload int) []string {
	return strs(c.read(name, payload))
}

func (c *checker) reader(name string) *snapshot.Reader {
	r, err := snapshot.Open(c.ctx, c.obs, name, snapshot.SnapshotPayload)
	require.NoError(c.t, err)
	c.t.Cleanup(func() { r.Close() })
	return r
}

// localDiff runs the local engine in mode mirror against object prev
// ("" for none, an empty snapshot); it returns the snapshot object, the
// change set's entries and the stats.
func (c *checker) localDiff(prev string) (string, []entry, diff.Stats) {
	cand, chg := c.name(), c.name()
	next := snapshot.Create(c.ctx, c.obs, cand, snapshot.SnapshotPayload)
	changes := snapshot.Create(c.ctx, c.obs, chg, snapshot.ChangesPayload)
	st, err := diff.ComputeWith(c.ctx, c.w, c.m, config.ModeMirror, diff.Options{}, c.reader(prev), next, changes)
	require.NoError(c.t, err)
	require.NoError(c.t, next.Close())
	require.NoError(c.t, changes.Close())
	return cand, c.read(chg, snapshot.ChangesPayload), st
}

// warehouseDiff runs the warehouse engine in mode mirror for a new run.
func (c *checker) warehouseDiff(prev warehouse.Previous) (warehouse.Tables, []entry, diff.Stats) {
	tables := warehouse.RunTables(Tag, "sync-under_test", run.NewID())
	chg := c.name()
	changes := snapshot.Create(c.ctx, c.obs, chg, snapshot.ChangesPayload)
	st, err := warehouse.Diff(c.ctx, c.w, c.m, config.ModeMirror, diff.Options{}, prev, tables, changes)
	if err != nil {
		changes.Abort(err)
	}
	require.NoError(c.t, err)
	require.NoError(c.t, changes.Close())
	return tables, c.read(chg, snapshot.ChangesPayload), st
}

// export reads a snapshot table as entries.
func (c *checker) export(table string) []string {
	name := c.name()
	out := snapshot.Create(c.ctx, c.obs, name, snapshot.SnapshotPayload)
	require.NoError(c.t, warehouse.Export(c.ctx, c.w, table, 2, out))
	require.NoError(c.t, out.Close())
	return c.entries(name, snapshot.SnapshotPayload)
}

// failedKeys picks the first key of each kind of change, and a key of
// both snapshots that did not change.
func (c *checker) failedKeys(changes []entry, prev, next string) map[string]bool {
	keep := map[string]bool{}
	kinds := map[record.Change]bool{}
	changed := map[string]bool{}
	for _, e := range changes {
		changed[string(e.key)] = true
		if k := record.Change(e.value[0]); !kinds[k] {
			kinds[k] = true
			keep[string(e.key)] = true
		}
	}
	require.Len(c.t, kinds, 3, "the second run adds, changes and deletes")
	before := map[string]bool{}
	for _, e := range c.read(prev, snapshot.SnapshotPayload) {
		before[string(e.key)] = true
	}
	for _, e := range c.read(next, snapshot.SnapshotPayload) {
		if before[string(e.key)] && !changed[string(e.key)] {
			keep[string(e.key)] = true
			break
		}
	}
	require.Len(c.t, keep, 4)
	return keep
}

func sameStats(t *testing.T, want, got diff.Stats, msg string) {
	t.Helper()
	require.Equal(t, []int64{want.Rows, want.Adds, want.Changes, want.Deletes},
		[]int64{got.Rows, got.Adds, got.Changes, got.Deletes}, msg)
}
