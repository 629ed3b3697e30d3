package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/postgres"
	"github.com/ebb-etl/ebb/libs/record"
)

var opts = config.DeliveryOptions{BatchSize: 100, Partitions: 2, AckWindow: 2, Timeout: 10 * time.Second}

func dsn() string {
	if v := os.Getenv("EBB_TEST_POSTGRES_DSN"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// db is a test's own schema in the test server.
type db struct {
	t      *testing.T
	conn   *pgx.Conn
	schema string
}

func newDB(t *testing.T) *db {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn())
	require.NoError(t, err, "the Postgres tests need a server at 127.0.0.1:5432 with trust auth; set EBB_TEST_POSTGRES_DSN to use another")
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	schema := "ebb_dest_" + hex.EncodeToString(suffix[:])
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		assert.NoError(t, err)
		_ = conn.Close(context.Background())
	})
	return &db{t: t, conn: conn, schema: schema}
}

func (d *db) exec(sql string, args ...any) {
	d.t.Helper()
	_, err := d.conn.Exec(context.Background(), sql, args...)
	require.NoError(d.t, err, sql)
}

func (d *db) open(table string, o config.DeliveryOptions) *postgres.Destination {
	d.t.Helper()
	dst, err := postgres.Open(context.Background(), map[string]any{"dsn": dsn(), "table": table}, o)
	require.NoError(d.t, err)
	d.t.Cleanup(func() { _ = dst.Close() })
	return dst
}

// rows returns the table's rows as JSON objects, ordered by sql's ORDER BY.
func (d *db) rows(query string) []map[string]any {
	d.t.Helper()
	rows, err := d.conn.Query(context.Background(), "SELECT to_jsonb(t)::text FROM ("+query+") t")
	require.NoError(d.t, err)
	var out []map[string]any
	var s string
	_, err = pgx.ForEachRow(rows, []any{&s}, func() error {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	require.NoError(d.t, err)
	return out
}

func (d *db) count(table string) int {
	d.t.Helper()
	var n int
	require.NoError(d.t, d.conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// withAppName tags connections so a test can find and kill them.
func withAppName(dsn, app string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "application_name=" + app
	}
	return dsn + " application_name=" + app
}

func batch(recs ...record.Record) destination.Batch {
	return destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: recs}
}

func write(t *testing.T, dst *postgres.Destination, b destination.Batch) []error {
	t.Helper()
	errs, err := dst.Write(context.Background(), b)
	require.NoError(t, err)
	require.Len(t, errs, len(b.Records))
	return errs
}

func requireDelivered(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "record %d", i)
	}
}

func TestCompositeKeyLifecycle(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".accounts"
	db.exec(`CREATE TABLE ` + table + ` (
		tenant text, id bigint, name text, amount numeric, meta jsonb, seen_at timestamptz,
		note text DEFAULT 'keep', tags text[], active boolean,
		PRIMARY KEY (tenant, id))`)
	dst := db.open(table, opts)

	key := func(tenant string, id int) map[string]any {
		return map[string]any{"tenant": tenant, "id": json.Number(fmt.Sprint(id))}
	}
	requireDelivered(t, write(t, dst, batch(
		record.Record{Op: record.OpUpsert, Key: key("acme", 1), Data: map[string]any{
			"name":    "Zoë 日本語 🎉 \"quoted\" \\ back",
			"amount":  json.Number("12345678901234.123456"),
			"meta":    json.RawMessage(`{"a": [1, 2], "b": {"c": null}}`),
			"seen_at": "2024-03-01T12:34:56.123456Z",
			"note":    nil,
			"tags":    []any{"x", "y"},
			"active":  true,
		}},
		record.Record{Op: record.OpUpsert, Key: key("acme", 2), Data: map[string]any{
			"name": "two", "meta": map[string]any{"nested": []any{json.Number("1.5"), "s"}},
		}},
		record.Record{Op: record.OpInsert, Key: key("other", 1), Data: map[string]any{"name": "three"}},
	)))

	rows := db.rows("SELECT tenant, id, name, amount::text AS amount, meta, seen_at = '2024-03-01 12:34:56.123456+00' AS seen_ok, note, tags, active FROM " + table + " ORDER BY tenant, id")
	require.Len(t, rows, 3)
	assert.Equal(t, map[string]any{
		"tenant": "acme", "id": json.Number("1"), "name": "Zoë 日本語 🎉 \"quoted\" \\ back",
		"amount": "12345678901234.123456", "meta": map[string]any{"a": []any{json.Number("1"), json.Number("2")}, "b": map[string]any{"c": nil}},
		"seen_ok": true, "note": nil, "tags": []any{"x", "y"}, "active": true,
	}, rows[0])
	assert.Equal(t, map[string]any{"nested": []any{json.Number("1.5"), "s"}}, rows[1]["meta"])
	assert.Equal(t, "keep", rows[1]["note"], "a column a record does not mention keeps its default")
	assert.Equal(t, "three", rows[2]["name"])

	// Update: only the fields sent change; a key that is not there is not inserted.
	requireDelivered(t, write(t, dst, batch(
		record.Record{Op: record.OpUpdate, Key: key("acme", 2), Data: map[string]any{"name": "two v2", "amount": json.Number("-0.000001")}},
		record.Record{Op: record.OpUpdate, Key: key("acme", 99), Data: map[string]any{"name": "ghost"}},
		record.Record{Op: record.OpUpsert, Key: key("acme", 1), Data: map[string]any{"name": "one v2"}},
	)))
	rows = db.rows("SELECT tenant, id, name, amount::text AS amount, note FROM " + table + " ORDER BY tenant, id")
	require.Len(t, rows, 3)
	assert.Equal(t, "one v2", rows[0]["name"])
	assert.Equal(t, "12345678901234.123456", rows[0]["amount"], "an upsert leaves the columns it does not name")
	assert.Equal(t, "two v2", rows[1]["name"])
	assert.Equal(t, "-0.000001", rows[1]["amount"])
	assert.Equal(t, "keep", rows[1]["note"])

	// Delete, with stray data that is ignored.
	requireDelivered(t, write(t, dst, batch(
		record.Record{Op: record.OpDelete, Key: key("acme", 1), Data: map[string]any{"not_a_column": 1}},
		record.Record{Op: record.OpDelete, Key: key("acme", 404)},
	)))
	rows = db.rows("SELECT tenant, id FROM " + table + " ORDER BY tenant, id")
	assert.Equal(t, []map[string]any{
		{"tenant": "acme", "id": json.Number("2")},
		{"tenant": "other", "id": json.Number("1")},
	}, rows)
}

func TestInsertTwiceIsIdempotent(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".users"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, email text NOT NULL)`)
	dst := db.open(table, opts)
	b := batch(
		record.Record{Op: record.OpInsert, Key: map[string]any{"id": 1}, Data: map[string]any{"email": "a@x"}},
		record.Record{Op: record.OpInsert, Key: map[string]any{"id": 2}, Data: map[string]any{"email": "b@x"}},
		record.Record{Op: record.OpInsert, Key: map[string]any{"id": 3}},
	)
	b.Records[2].Data = map[string]any{"email": "c@x"}
	requireDelivered(t, write(t, dst, b))
	requireDelivered(t, write(t, dst, b))
	assert.Equal(t, 3, db.count(table))

	// Only the key: nothing to update, the insert is still idempotent.
	db.exec(`CREATE TABLE ` + db.schema + `.ids (id int PRIMARY KEY)`)
	ids := db.open(db.schema+".ids", opts)
	keyOnly := batch(record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 7}})
	requireDelivered(t, write(t, ids, keyOnly))
	requireDelivered(t, write(t, ids, keyOnly))
	requireDelivered(t, write(t, ids, batch(record.Record{Op: record.OpUpdate, Key: map[string]any{"id": 7}})))
	assert.Equal(t, 1, db.count(db.schema+".ids"))
}

func TestUnknownFieldFailsOnlyThatRecord(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".users"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, email text, total int GENERATED ALWAYS AS (id * 2) STORED)`)
	dst := db.open(table, opts)
	errs := write(t, dst, batch(
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"email": "a@x"}},
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 2}, Data: map[string]any{"email": "b@x", "phone": "555", "fax": "1"}},
		record.Record{Op: record.OpUpdate, Key: map[string]any{"id": 3}, Data: map[string]any{"total": 6}},
		record.Record{Op: "merge", Key: map[string]any{"id": 4}},
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 5}, Data: map[string]any{"email": "e@x"}},
	))
	assert.NoError(t, errs[0])
	require.Error(t, errs[1])
	assert.Contains(t, errs[1].Error(), `fields "fax", "phone" are not a column of table`)
	assert.ErrorContains(t, errs[2], `field "total" is a generated column`)
	assert.ErrorContains(t, errs[3], `unknown op "merge"`)
	assert.NoError(t, errs[4])
	assert.Equal(t, []map[string]any{{"id": json.Number("1")}, {"id": json.Number("5")}}, db.rows("SELECT id FROM "+table+" ORDER BY id"))
}

func TestDataErrorsArePermanent(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".orders"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, amount numeric CHECK (amount >= 0), qty int, placed date)`)
	dst := db.open(table, opts)
	good := record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"amount": json.Number("5")}}

	cases := map[string]record.Record{
		"check":     {Op: record.OpUpsert, Key: map[string]any{"id": 2}, Data: map[string]any{"amount": json.Number("-1")}},
		"type":      {Op: record.OpUpsert, Key: map[string]any{"id": 2}, Data: map[string]any{"qty": "many"}},
		"overflow":  {Op: record.OpUpsert, Key: map[string]any{"id": 2}, Data: map[string]any{"qty": json.Number("99999999999")}},
		"bad date":  {Op: record.OpUpsert, Key: map[string]any{"id": 2}, Data: map[string]any{"placed": "2024-02-30"}},
		"bad key":   {Op: record.OpUpsert, Key: map[string]any{"id": "two"}, Data: map[string]any{"qty": 1}},
		"key twice": {Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"amount": json.Number("6")}},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			errs, err := dst.Write(context.Background(), batch(good, bad))
			require.Error(t, err)
			assert.Nil(t, errs)
			t.Log(err)
			assert.True(t, destination.IsPermanent(err), "%v", err)
			assert.Contains(t, err.Error(), "SQLSTATE")
			assert.Zero(t, db.count(table), "the transaction is rolled back")
		})
	}
	errs, err := dst.Write(context.Background(), batch(good))
	require.NoError(t, err)
	requireDelivered(t, errs)
}

func TestKeyChecks(t *testing.T) {
	db := newDB(t)
	db.exec(`CREATE TABLE ` + db.schema + `.loose (id int, email text)`)
	db.exec(`CREATE TABLE ` + db.schema + `.partial (id int, email text)`)
	db.exec(`CREATE UNIQUE INDEX ON ` + db.schema + `.partial (id) WHERE email IS NOT NULL`)
	db.exec(`CREATE TABLE ` + db.schema + `.alt (id int PRIMARY KEY, email text UNIQUE, n int)`)

	loose := db.open(db.schema+".loose", opts)
	errs := write(t, loose, batch(
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"email": "a"}},
		record.Record{Op: record.OpDelete, Key: map[string]any{"uid": 1}},
		record.Record{Op: record.OpUpsert},
	))
	assert.ErrorContains(t, errs[0], "key columns (id) of table "+db.schema+".loose have no primary key or unique index")
	assert.ErrorContains(t, errs[1], `key column "uid" is not a column of table`)
	assert.ErrorContains(t, errs[2], "no key")

	partial := db.open(db.schema+".partial", opts)
	errs = write(t, partial, batch(record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}}))
	assert.ErrorContains(t, errs[0], "no primary key or unique index")

	// Any unique index on exactly the key columns will do.
	alt := db.open(db.schema+".alt", opts)
	requireDelivered(t, write(t, alt, batch(
		record.Record{Op: record.OpUpsert, Key: map[string]any{"email": "a@x"}, Data: map[string]any{"id": 1, "n": 1}},
	)))
	requireDelivered(t, write(t, alt, batch(
		record.Record{Op: record.OpUpsert, Key: map[string]any{"email": "a@x"}, Data: map[string]any{"id": 1, "n": 2}},
	)))
	assert.Equal(t, []map[string]any{{"id": json.Number("1"), "email": "a@x", "n": json.Number("2")}}, db.rows("SELECT * FROM "+db.schema+".alt"))
}

func TestQuotedNames(t *testing.T) {
	db := newDB(t)
	db.exec(`CREATE TABLE ` + db.schema + `."Mixed Case" ("Full Name" text, "ID" int PRIMARY KEY, "select" text)`)
	dst := db.open(db.schema+`."Mixed Case"`, opts)
	requireDelivered(t, write(t, dst, batch(
		record.Record{Op: record.OpUpsert, Key: map[string]any{"ID": 1}, Data: map[string]any{"Full Name": "Ada", "select": "x"}},
	)))
	assert.Equal(t, []map[string]any{{"ID": json.Number("1"), "Full Name": "Ada", "select": "x"}},
		db.rows(`SELECT * FROM `+db.schema+`."Mixed Case"`))

	// Unquoted names fold to lower case, as in SQL.
	db.exec(`CREATE TABLE ` + db.schema + `.lower (id int PRIMARY KEY)`)
	db.open(db.schema+".LOWER", opts)
	_, err := postgres.Open(context.Background(), map[string]any{"dsn": dsn(), "table": db.schema + `."LOWER"`}, opts)
	require.Error(t, err)
}

func TestOpenErrors(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	_, err := postgres.Open(ctx, map[string]any{"dsn": dsn(), "table": db.schema + ".missing"}, opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "table "+db.schema+".missing does not exist")

	_, err = postgres.Open(ctx, map[string]any{"dsn": dsn(), "table": "no_such_schema_x.t"}, opts)
	assert.ErrorContains(t, err, "table no_such_schema_x.t does not exist")

	db.exec(`CREATE VIEW ` + db.schema + `.v AS SELECT 1 AS id`)
	_, err = postgres.Open(ctx, map[string]any{"dsn": dsn(), "table": db.schema + ".v"}, opts)
	assert.ErrorContains(t, err, "is not a table")

	for cfg, want := range map[string]map[string]any{
		"postgres config.dsn is required":         {"table": "t"},
		"postgres config.table is required":       {"dsn": dsn()},
		"postgres config.table: want a string":    {"dsn": dsn(), "table": 1},
		"postgres config.table: \"a.b.c\"":        {"dsn": dsn(), "table": "a.b.c"},
		"unterminated quoted name":                {"dsn": dsn(), "table": `"abc`},
		"has an empty name":                       {"dsn": dsn(), "table": "a."},
		"postgres config.dsn: not a valid":        {"dsn": "postgres://user:hunter2@host:notaport/db", "table": "t"},
		"quote names that contain spaces":         {"dsn": dsn(), "table": "my table"},
		"unexpected text after a quoted name":     {"dsn": dsn(), "table": `"a"b`},
		"postgres config.dsn: want a string, got": {"dsn": 5, "table": "t"},
	} {
		_, err := postgres.Open(ctx, want, opts)
		require.Error(t, err, cfg)
		assert.Contains(t, err.Error(), cfg)
		assert.NotContains(t, err.Error(), "hunter2")
	}
}

func TestLockTimeoutIsTransient(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".users"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, n int)`)
	db.exec(`INSERT INTO ` + table + ` VALUES (1, 0)`)
	o := opts
	o.Timeout = 200 * time.Millisecond
	dst := db.open(table, o)

	// Hold the row lock in another transaction so the write waits.
	ctx := context.Background()
	tx, err := db.conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE `+table+` SET n = 1 WHERE id = 1`)
	require.NoError(t, err)

	_, err = dst.Write(ctx, batch(record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"n": 2}}))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err), "%v", err)
	require.NoError(t, tx.Rollback(ctx))

	requireDelivered(t, write(t, dst, batch(record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"n": 2}})))
}

func TestLostConnectionIsTransient(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".users"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, n int)`)
	app := "ebb_test_" + db.schema
	dst, err := postgres.Open(context.Background(), map[string]any{"dsn": withAppName(dsn(), app), "table": table}, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dst.Close() })
	rec := func(n int) destination.Batch {
		return batch(record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"n": n}})
	}
	requireDelivered(t, write(t, dst, rec(1)))

	db.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
	_, err = dst.Write(context.Background(), rec(2))
	if err != nil {
		assert.False(t, destination.IsPermanent(err), "%v", err)
	}
	require.Eventually(t, func() bool {
		_, err := dst.Write(context.Background(), rec(3))
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, []map[string]any{{"n": json.Number("3")}}, db.rows("SELECT n FROM "+table))
}

func TestConcurrentWrites(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".events"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, worker int, payload jsonb)`)
	dst := db.open(table, opts)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			recs := make([]record.Record, 50)
			for i := range recs {
				recs[i] = record.Record{Op: record.OpUpsert, Key: map[string]any{"id": w*1000 + i},
					Data: map[string]any{"worker": w, "payload": map[string]any{"i": i}}}
			}
			errs, err := dst.Write(context.Background(), batch(recs...))
			if assert.NoError(t, err) {
				for _, e := range errs {
					assert.NoError(t, e)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 400, db.count(table))
}
