// Package warehouse is the `warehouse` diff engine: a run's snapshot (each
// key of the model with its row hash) and its change set are tables in the
// source's snapshot schema, the change set is one SQL statement against the
// last committed snapshot table, and only the change set's keys and, later,
// the changed rows leave the warehouse.
//
// A run's tables are named after its sync and id (RunTables), so a diff
// that is retried rebuilds the same tables and a crash leaves tables that
// Clean can attribute to their run.
package warehouse

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
)

// Tables names a run's tables, unqualified.
type Tables struct {
	// Snapshot holds the model's keys (k1..kn) and row hashes (h) as
	// diffed; once committed, it is the sync's snapshot.
	Snapshot string
	// Changes holds the change set: keys and a change kind (c).
	Changes string
	// Previous holds the committed snapshot when it was not a table of
	// this engine: loaded from the local engine's object, or empty.
	Previous string
	// Keys holds keys uploaded for a statement: quarantined keys in the
	// diff, failed keys in the commit.
	Keys string
}

// tableKinds are the prefixes of the engine's table names.
var tableKinds = []string{"snap", "chg", "prev", "keys"}

// runIDLen is the length of a run id (a ULID), tagLen of a deployment's tag.
const (
	runIDLen = 26
	tagLen   = 6
)

// RunTables names the tables of a run: kind_<tag>_<sync>_<hash>_<run>.
// tag is the deployment's (see Tag): deployments sharing a schema never
// touch each other's tables. The sync's name is cut to 12 characters and
// the hash of the whole name keeps syncs with the same beginning apart. The
// longest name has 60 characters, under Postgres's limit of 63.
func RunTables(tag, sync, runID string) Tables {
	h := fnv.New32a()
	h.Write([]byte(sync))
	name := strings.ToLower(strings.ReplaceAll(sync, "-", "_"))
	if len(name) > 12 {
		name = name[:12]
	}
	suffix := fmt.Sprintf("_%s_%s_%08x_%s", tag, name, h.Sum32(), strings.ToLower(runID))
	return Tables{Snapshot: "snap" + suffix, Changes: "chg" + suffix, Previous: "prev" + suffix, Keys: "keys" + suffix}
}

// RunOf returns the deployment tag and the run id of a table the engine
// named, or "", "" for any other table.
func RunOf(table string) (tag, runID string) {
	kind, rest, ok := strings.Cut(table, "_")
	if !ok || !slices.Contains(tableKinds, kind) || len(rest) < tagLen+1+runIDLen+1 || rest[tagLen] != '_' {
		return "", ""
	}
	id := rest[len(rest)-runIDLen:]
	if rest[len(rest)-runIDLen-1] != '_' || !lowerAlnum(id) || !lowerAlnum(rest[:tagLen]) {
		return "", ""
	}
	return rest[:tagLen], strings.ToUpper(id)
}

func lowerAlnum(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// tagKey holds the deployment's tag in the state bucket.
const tagKey = "warehouse.tag"

// Tag returns the deployment's tag, creating it on first use: six random
// characters that every table name of the deployment carries.
func Tag(ctx context.Context, kv jetstream.KeyValue) (string, error) {
	e, err := kv.Get(ctx, tagKey)
	if err == nil {
		return string(e.Value()), nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("reading the warehouse tag: %w", err)
	}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	tag := make([]byte, tagLen)
	for i := range tag {
		tag[i] = letters[rand.IntN(len(letters))]
	}
	_, err = kv.Create(ctx, tagKey, tag)
	if err == nil {
		return string(tag), nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("creating the warehouse tag: %w", err)
	}
	// Another process created it first: its tag wins. On a cluster, a
	// replica that has not caught up yet may answer the read: wait for it.
	for attempt := 0; ; attempt++ {
		e, err = kv.Get(ctx, tagKey)
		if err == nil {
			return string(e.Value()), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) || attempt == 50 {
			return "", fmt.Errorf("reading the warehouse tag: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Previous is the committed snapshot a diff compares against: a table of
// this engine, or else the local engine's object (nil when the sync has
// never committed), which Diff loads into the run's Previous table.
type Previous struct {
	Table  string
	Object *snapshot.Reader
}

// Diff writes the run's snapshot table from the model, its change table
// against prev, and the change set, in key order, to changes: the extractor
// walks it as it walks the local engine's. opts are the local engine's:
// keys in opts.Skip (quarantined) are left out of the change set, and
// opts.ResendCommon makes every key of both tables a change. Every table is
// dropped and rebuilt, so a retried diff starts over.
func Diff(ctx context.Context, w source.Warehouse, m source.Model, mode config.Mode, opts diff.Options,
	prev Previous, t Tables, changes *snapshot.Writer) (diff.Stats, error) {
	q, err := w.WarehouseSQL(ctx, m)
	if err != nil {
		return diff.Stats{}, err
	}
	n := len(q.Keys)
	snap, chg := w.Table(t.Snapshot), w.Table(t.Changes)
	stmts := []source.Stmt{
		{SQL: "DROP TABLE IF EXISTS " + snap},
		{SQL: "DROP TABLE IF EXISTS " + chg},
		{SQL: create(w) + snap + " AS SELECT " + keysAs(q.Keys) + ", " + q.Hash + " AS h FROM " + q.From},
	}
	if _, err := w.Exec(ctx, stmts...); err != nil {
		return diff.Stats{}, fmt.Errorf("writing snapshot table: %w", err)
	}
	st, err := checkKeys(ctx, w, snap, n)
	if err != nil {
		return st, err
	}
	prevTable := prev.Table
	if prevTable == "" {
		prevTable = t.Previous
		if err := load(ctx, w, snap, prevTable, n, prev.Object); err != nil {
			return st, fmt.Errorf("loading the local engine's snapshot: %w", err)
		}
	}
	if _, err := w.Exec(ctx, source.Stmt{SQL: "DROP TABLE IF EXISTS " + chg},
		changeStatement(w, w.Table(prevTable), snap, chg, n, mode, opts.ResendCommon)); err != nil {
		return st, fmt.Errorf("writing change table: %w", err)
	}
	if len(opts.Skip) > 0 {
		if st.Quarantined, err = dropKeys(ctx, w, t.Changes, t.Keys, n, opts.Skip); err != nil {
			return st, fmt.Errorf("leaving quarantined keys out: %w", err)
		}
	}
	err = w.ScanKeys(ctx, "SELECT "+cols("", n)+", c FROM "+chg+" ORDER BY "+cols("", n), n, func(key record.Key, c []byte) error {
		switch record.Change(c[0]) {
		case record.Added:
			st.Adds++
		case record.Deleted:
			st.Deletes++
		default:
			st.Changes++
		}
		return changes.Write(key, c[:1])
	})
	if err != nil {
		return st, fmt.Errorf("reading change table: %w", err)
	}
	return st, nil
}

// keysAs selects the key expressions as k1..kn.
func keysAs(keys []source.KeyExpr) string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s AS k%d", k.Expr, i+1)
	}
	return strings.Join(out, ", ")
}

// cols lists k1..kn, qualified by alias when set.
func cols(alias string, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d", i+1)
		if alias != "" {
			out[i] = alias + "." + out[i]
		}
	}
	return strings.Join(out, ", ")
}

// sameKey joins aliases a and b on the key columns.
func sameKey(a, b string, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.k%d = %s.k%d", a, i+1, b, i+1)
	}
	return strings.Join(out, " AND ")
}

// hasNull is true for a row with a NULL key part.
func hasNull(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d IS NULL", i+1)
	}
	return "(" + strings.Join(out, " OR ") + ")"
}

// distinctKeys counts the distinct non-NULL keys of snap. A one-column key
// (most models) uses count(DISTINCT k1), which every warehouse has:
// Postgres counts 1M keys that way in 0.25 s, and through a DISTINCT
// subquery, whose hash aggregate spills to disk, in 1.2 s.
func distinctKeys(snap string, n int) string {
	if n == 1 {
		return "SELECT count(DISTINCT k1) FROM " + snap
	}
	return "SELECT count(*) FROM (SELECT DISTINCT " + cols("", n) + " FROM " + snap + " WHERE NOT " + hasNull(n) + ") d"
}

// checkKeys counts the snapshot's rows and fails the run, as the local
// engine does, on NULL or duplicate keys.
func checkKeys(ctx context.Context, w source.Warehouse, snap string, n int) (diff.Stats, error) {
	var st diff.Stats
	var err error
	if st.NullKeys, err = w.QueryInt(ctx, "SELECT count(*) FROM "+snap+" WHERE "+hasNull(n)); err != nil {
		return st, fmt.Errorf("checking keys: %w", err)
	}
	valid := "SELECT " + cols("", n) + " FROM " + snap + " WHERE NOT " + hasNull(n)
	if st.Rows, err = w.QueryInt(ctx, "SELECT count(*) FROM ("+valid+") v"); err != nil {
		return st, fmt.Errorf("checking keys: %w", err)
	}
	distinct, err := w.QueryInt(ctx, distinctKeys(snap, n))
	if err != nil {
		return st, fmt.Errorf("checking keys: %w", err)
	}
	st.DupKeys = st.Rows - distinct
	if st.NullKeys == 0 && st.DupKeys == 0 {
		return st, nil
	}
	first := func(where string) (record.Key, error) {
		var k record.Key
		err := w.ScanKeys(ctx, "SELECT "+cols("s", n)+", s.h FROM "+snap+" s WHERE "+where+" ORDER BY "+cols("s", n)+" LIMIT 1", n,
			func(key record.Key, _ []byte) error {
				k = append(record.Key(nil), key...)
				return nil
			})
		return k, err
	}
	if st.NullKeys > 0 {
		if st.FirstNull, err = first(hasNull(n)); err != nil {
			return st, err
		}
	}
	if st.DupKeys > 0 {
		// EXISTS rather than (k1, k2) IN (SELECT ...): BigQuery has no
		// multi-column IN.
		dups := "EXISTS (SELECT 1 FROM (SELECT " + cols("", n) + " FROM " + snap + " WHERE NOT " + hasNull(n) +
			" GROUP BY " + cols("", n) + " HAVING count(*) > 1) d WHERE " + sameKey("d", "s", n) + ")"
		if st.FirstDup, err = first(dups); err != nil {
			return st, err
		}
	}
	return st, &diff.KeyError{Stats: st}
}

// changeStatement builds the change table in one statement: a FULL OUTER
// JOIN of the snapshot with the previous one on the key, in a CTE, gives
// each key's kind of change, and the mode keeps the kinds it sends. It
// measured about 1.8 times faster than one statement per kind (anti-joins
// for adds and deletes, a join for changes) on Postgres and DuckDB alike
// (make bench, diff scenario), since both tables are read once. With
// resend, a key in both tables is a change whatever its hashes.
func changeStatement(w source.Warehouse, prev, snap, chg string, n int, mode config.Mode, resend bool) source.Stmt {
	var keys, sides, kinds []string
	for i := 1; i <= n; i++ {
		keys = append(keys, fmt.Sprintf("COALESCE(nk%d, pk%d) AS k%d", i, i, i))
		sides = append(sides, fmt.Sprintf("n.k%d AS nk%d, p.k%d AS pk%d", i, i, i, i))
	}
	for _, c := range []record.Change{record.Added, record.Changed, diff.Unchanged, record.Deleted} {
		if diff.Sends(mode, c) {
			kinds = append(kinds, "'"+string(c)+"'")
		}
	}
	if len(kinds) == 0 {
		kinds = []string{"'-'"} // no mode sends nothing; keep the SQL valid
	}
	kind := "CASE WHEN pk1 IS NULL THEN 'a' WHEN nk1 IS NULL THEN 'd' WHEN nh = ph THEN '" + string(diff.Unchanged) + "' ELSE 'c' END"
	if resend {
		kind = "CASE WHEN pk1 IS NULL THEN 'a' WHEN nk1 IS NULL THEN 'd' ELSE 'c' END"
	}
	return source.Stmt{SQL: create(w) + chg + " AS WITH j AS (SELECT " + strings.Join(sides, ", ") + ", n.h AS nh, p.h AS ph FROM " +
		snap + " n FULL OUTER JOIN " + prev + " p ON " + sameKey("n", "p", n) + "), " +
		"kinds AS (SELECT " + strings.Join(keys, ", ") + ", " + kind + " AS c FROM j) " +
		"SELECT * FROM kinds WHERE c IN (" + strings.Join(kinds, ", ") + ")"}
}

// load creates table prev (unqualified) shaped like snap, with the entries
// of obj.
func load(ctx context.Context, w source.Warehouse, snap, prev string, n int, obj *snapshot.Reader) error {
	_, err := w.Exec(ctx,
		source.Stmt{SQL: "DROP TABLE IF EXISTS " + w.Table(prev)},
		source.Stmt{SQL: create(w) + w.Table(prev) + " AS SELECT * FROM " + snap + " WHERE 1 = 0"})
	if err != nil || obj == nil {
		return err
	}
	hexHash := w.Dialect().HashHex
	return writeRows(ctx, w, prev, func() ([]any, bool, error) {
		ok, err := obj.Next()
		if !ok || err != nil {
			return nil, false, err
		}
		row, err := keyParts(obj.Key(), n)
		if err != nil {
			return nil, false, err
		}
		if hexHash {
			return append(row, hex.EncodeToString(obj.Value())), true, nil
		}
		return append(row, append([]byte(nil), obj.Value()...)), true, nil
	})
}

// keyParts are the values of a key's parts, n of them.
func keyParts(key record.Key, n int) ([]any, error) {
	parts, err := key.Parts()
	if err != nil {
		return nil, err
	}
	if len(parts) != n {
		return nil, fmt.Errorf("key %s has %d parts, the table %d", key, len(parts), n)
	}
	return parts, nil
}

// writeRows appends the rows next returns to table (unqualified): in one
// bulk load where the warehouse has one (source.RowLoader), else in
// multi-row INSERTs.
func writeRows(ctx context.Context, w source.Warehouse, table string, next func() ([]any, bool, error)) error {
	if l, ok := w.(source.RowLoader); ok {
		_, err := l.LoadRows(ctx, table, next)
		return err
	}
	ins := &inserter{w: w, table: w.Table(table)}
	for {
		row, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			return ins.flush(ctx)
		}
		if err := ins.add(ctx, row); err != nil {
			return err
		}
	}
}

// create begins a CREATE TABLE ... AS statement in w's dialect.
func create(w source.Warehouse) string {
	if c := w.Dialect().CreateTable; c != "" {
		return c + " "
	}
	return "CREATE TABLE "
}

// deleteKeys deletes the rows of table whose key is in keysTable (both
// unqualified): with a USING join where the dialect asks for it, else with
// a correlated EXISTS on an alias.
func deleteKeys(w source.Warehouse, table, keysTable string, n int) source.Stmt {
	if d := w.Dialect(); d.DeleteUsing {
		conds := make([]string, n)
		for i := range conds {
			conds[i] = fmt.Sprintf("q.k%d = %s.k%d", i+1, d.Quote(table), i+1)
		}
		return source.Stmt{SQL: "DELETE FROM " + w.Table(table) + " USING " + w.Table(keysTable) + " q WHERE " +
			strings.Join(conds, " AND ")}
	}
	return source.Stmt{SQL: "DELETE FROM " + w.Table(table) + " t WHERE EXISTS (SELECT 1 FROM " + w.Table(keysTable) +
		" q WHERE " + sameKey("q", "t", n) + ")"}
}

// dropKeys deletes the rows of table whose key is in keys, through the
// keys table, and returns how many it deleted. Tables are unqualified.
func dropKeys(ctx context.Context, w source.Warehouse, table, keysTable string, n int, keys map[string]bool) (int64, error) {
	if err := upload(ctx, w, table, keysTable, n, keys); err != nil {
		return 0, err
	}
	counts, err := w.Exec(ctx, deleteKeys(w, table, keysTable, n), source.Stmt{SQL: "DROP TABLE " + w.Table(keysTable)})
	if err != nil {
		return 0, err
	}
	return counts[0], nil
}

// upload writes keys to a new keys table, whose columns are like table's.
// Tables are unqualified.
func upload(ctx context.Context, w source.Warehouse, table, keysTable string, n int, keys map[string]bool) error {
	_, err := w.Exec(ctx,
		source.Stmt{SQL: "DROP TABLE IF EXISTS " + w.Table(keysTable)},
		source.Stmt{SQL: create(w) + w.Table(keysTable) + " AS SELECT " + cols("", n) + " FROM " + w.Table(table) + " WHERE 1 = 0"})
	if err != nil {
		return err
	}
	var pending []string
	for k := range keys {
		pending = append(pending, k)
	}
	return writeRows(ctx, w, keysTable, func() ([]any, bool, error) {
		if len(pending) == 0 {
			return nil, false, nil
		}
		k := pending[0]
		pending = pending[1:]
		row, err := keyParts(record.Key(k), n)
		return row, err == nil, err
	})
}

// inserter writes rows in multi-row INSERTs.
type inserter struct {
	w     source.Warehouse
	table string
	rows  []string
	args  []any
}

// insertRows is how many rows one INSERT carries: a few thousand
// parameters, well under every warehouse's limit.
const insertRows = 500

func (ins *inserter) add(ctx context.Context, row []any) error {
	ps := make([]string, len(row))
	for i, v := range row {
		ins.args = append(ins.args, v)
		ps[i] = ins.w.Param(len(ins.args))
	}
	ins.rows = append(ins.rows, "("+strings.Join(ps, ", ")+")")
	if len(ins.rows) == insertRows {
		return ins.flush(ctx)
	}
	return nil
}

func (ins *inserter) flush(ctx context.Context) error {
	if len(ins.rows) == 0 {
		return nil
	}
	_, err := ins.w.Exec(ctx, source.Stmt{SQL: "INSERT INTO " + ins.table + " VALUES " + strings.Join(ins.rows, ", "), Args: ins.args})
	ins.rows, ins.args = ins.rows[:0], nil
	return err
}

// Patch makes the run's snapshot table the one to commit: the keys in keep
// (records that failed, and quarantined keys) get back their entry from
// prev, or lose theirs when prev had none, so the next run sends them
// again. It is idempotent, for a commit resumed after a crash. It returns
// the snapshot's row count.
func Patch(ctx context.Context, w source.Warehouse, t Tables, prev string, n int, keep map[string]bool) (int64, error) {
	snap, keys := w.Table(t.Snapshot), w.Table(t.Keys)
	if err := upload(ctx, w, t.Snapshot, t.Keys, n, keep); err != nil {
		return 0, fmt.Errorf("uploading failed keys: %w", err)
	}
	_, err := w.Exec(ctx,
		deleteKeys(w, t.Snapshot, t.Keys, n),
		source.Stmt{SQL: "INSERT INTO " + snap + " SELECT * FROM " + w.Table(prev) + " p WHERE EXISTS (SELECT 1 FROM " +
			keys + " q WHERE " + sameKey("q", "p", n) + ")"},
		source.Stmt{SQL: "DROP TABLE " + keys})
	if err != nil {
		return 0, fmt.Errorf("patching snapshot table: %w", err)
	}
	return w.QueryInt(ctx, "SELECT count(*) FROM "+snap)
}

// Drop drops a table of the snapshot schema (unqualified) if it exists,
// such as a committed snapshot that ebb sync reset discards.
func Drop(ctx context.Context, w source.Warehouse, table string) error {
	if _, err := w.Exec(ctx, source.Stmt{SQL: "DROP TABLE IF EXISTS " + w.Table(table)}); err != nil {
		return fmt.Errorf("dropping %s: %w", table, err)
	}
	return nil
}

// Export writes a snapshot table to the local engine's sorted file, for a
// sync that moves to the local engine.
func Export(ctx context.Context, w source.Warehouse, table string, n int, out *snapshot.Writer) error {
	write := out.Write
	if w.Dialect().HashHex {
		var hash []byte
		write = func(key record.Key, h []byte) error {
			var err error
			if hash, err = hex.AppendDecode(hash[:0], h); err != nil || len(hash) != md5.Size {
				return fmt.Errorf("decoding row hash %q: not %d hex digits", h, 2*md5.Size)
			}
			return out.Write(key, hash)
		}
	}
	return w.ScanKeys(ctx, "SELECT "+cols("", n)+", h FROM "+w.Table(table)+" ORDER BY "+cols("", n), n, write)
}

// Clean drops the tables of the deployment tagged tag that no run needs: those of runs that
// are not active (active is asked once per run id found) and that do not
// hold a sync's committed snapshot (committed, asked once, returns those
// tables). It returns the tables it dropped.
//
// committed is asked after every active: a snapshot table becomes committed
// only while its run is active (committing), so a run seen inactive cannot
// become committed afterwards, and the committed tables read then are
// current for it.
func Clean(ctx context.Context, w source.Warehouse, tag string, active func(runID string) (bool, error),
	committed func() (map[string]bool, error)) ([]string, error) {
	tables, err := w.Tables(ctx)
	if err != nil {
		return nil, err
	}
	isActive := map[string]bool{}
	var candidates []string
	for _, table := range tables {
		t, id := RunOf(table)
		if id == "" || t != tag {
			continue // not ours
		}
		a, seen := isActive[id]
		if !seen {
			if a, err = active(id); err != nil {
				return nil, err
			}
			isActive[id] = a
		}
		if !a {
			candidates = append(candidates, table)
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	keep, err := committed()
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, table := range candidates {
		if keep[table] {
			continue
		}
		if _, err := w.Exec(ctx, source.Stmt{SQL: "DROP TABLE IF EXISTS " + w.Table(table)}); err != nil {
			return dropped, fmt.Errorf("dropping %s: %w", table, err)
		}
		dropped = append(dropped, table)
	}
	return dropped, nil
}

// MarkUncertain gives the keys in uncertain the row hash diff.Uncertain in
// the run's snapshot table, present whether or not the table had them, so
// the next run sends each again: an upsert while its row is in the model, a
// delete once it is not. A mirror run commits its failed records so, since
// a record that failed may have reached the destination (a timeout after the
// destination took it). Call it after Patch, on the same tables; it is
// idempotent.
func MarkUncertain(ctx context.Context, w source.Warehouse, t Tables, n int, uncertain map[string]bool) (int64, error) {
	snap := w.Table(t.Snapshot)
	if err := load(ctx, w, snap, t.Keys, n, nil); err != nil {
		return 0, fmt.Errorf("marking uncertain keys: %w", err)
	}
	var pending []string
	for k := range uncertain {
		pending = append(pending, k)
	}
	hash := any(append([]byte(nil), diff.Uncertain...))
	if w.Dialect().HashHex {
		hash = hex.EncodeToString(diff.Uncertain)
	}
	err := writeRows(ctx, w, t.Keys, func() ([]any, bool, error) {
		if len(pending) == 0 {
			return nil, false, nil
		}
		row, err := keyParts(record.Key(pending[0]), n)
		pending = pending[1:]
		return append(row, hash), err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("uploading uncertain keys: %w", err)
	}
	_, err = w.Exec(ctx,
		deleteKeys(w, t.Snapshot, t.Keys, n),
		source.Stmt{SQL: "INSERT INTO " + snap + " SELECT * FROM " + w.Table(t.Keys)},
		source.Stmt{SQL: "DROP TABLE " + w.Table(t.Keys)})
	if err != nil {
		return 0, fmt.Errorf("marking uncertain keys: %w", err)
	}
	return w.QueryInt(ctx, "SELECT count(*) FROM "+snap)
}
