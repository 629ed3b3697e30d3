package postgres_test

import (
	"encoding/json"
	"math"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination/postgres"
	"github.com/ebb-etl/ebb/libs/record"
)

// Rows are copied into a staging table unless a group writes an array or
// composite column, when they go as JSON through jsonb_populate_recordset.
// Whatever the values, both ways must leave the same rows: the same
// records are written to a table copied into and to one whose extra
// array column sends them the JSON way.
func TestCopyWritesWhatJSONWrites(t *testing.T) {
	db := newDB(t)
	db.exec(`CREATE DOMAIN ` + db.schema + `.doc AS jsonb`)
	cols := `id bigint PRIMARY KEY, s text, n numeric, i int, f float8, b boolean, j jsonb, jj json, d ` + db.schema + `.doc,
		ts timestamptz, day date, v varchar(40), u uuid`
	copied, viaJSON := db.schema+".copied", db.schema+".via_json"
	db.exec(`CREATE TABLE ` + copied + ` (` + cols + `)`)
	db.exec(`CREATE TABLE ` + viaJSON + ` (` + cols + `, tags text[])`)

	tricky := []any{
		"plain", "tab\there", "new\nline\r\n", `back\slash \N`, `\N`, "", "ünïcødé 日本語 🎉", "bad \xff utf8",
		json.Number("12345678901234567890.123456789"), json.Number("-0.5e-3"), int64(math.MaxInt64), 7, 1.25, true, false, nil,
		map[string]any{"a": "x\ty", "b": []any{json.Number("1"), `q"\`}}, []any{"x", nil}, json.RawMessage(` {"r" : 1} `),
	}
	var recs []record.Record
	for i, v := range tricky {
		data := map[string]any{"j": v, "jj": v, "d": v}
		switch v.(type) {
		case string:
			data["s"], data["v"] = v, v
		case json.Number, int, int64, float64:
			data["n"] = v
		case bool:
			data["b"] = v
		case nil:
			for _, c := range []string{"s", "n", "i", "f", "b", "ts", "day", "u"} {
				data[c] = nil
			}
		}
		if i == 0 {
			data["i"], data["f"], data["ts"], data["day"] = 42, 2.5, "2024-03-01T12:34:56.5+02:00", "2024-02-29"
			data["u"] = "8c7a7a5e-3f1b-4b7e-9d1e-2b0c6a9f1e11"
		}
		recs = append(recs, record.Record{Op: record.OpUpsert, Key: map[string]any{"id": i}, Data: data})
	}
	requireDelivered(t, write(t, db.open(copied, opts), batch(recs...)))
	for i := range recs {
		recs[i].Data["tags"] = nil
	}
	requireDelivered(t, write(t, db.open(viaJSON, opts), batch(recs...)))

	query := func(table string) []map[string]any {
		// jsonb's text of a json column: the JSON way stores jsonb's
		// normalised text there, COPY the JSON as written; the same value.
		return db.rows(`SELECT id, s, n::text AS n, i, f, b, j, jj::jsonb AS jj, d, ts, day, v, u FROM ` + table + ` ORDER BY id`)
	}
	want := query(viaJSON)
	require.Len(t, want, len(tricky))
	assert.Equal(t, want, query(copied))
	assert.Equal(t, `back\slash \N`, want[3]["s"])
	assert.Equal(t, `\N`, want[4]["s"], `the text \N is not NULL`)
	assert.Equal(t, "\\N", want[4]["j"], "a string into jsonb is a JSON string")

	// Other values into a text column: their JSON text, as written (the
	// JSON way gave jsonb's normalised text: "-0.0005", {"a": 1}).
	requireDelivered(t, write(t, db.open(copied, opts), batch(
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 100}, Data: map[string]any{"s": json.Number("-0.5e-3")}},
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 101}, Data: map[string]any{"s": true}},
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 102}, Data: map[string]any{"s": map[string]any{"b": []any{1}, "a": "x\ty"}}},
	)))
	assert.Equal(t, []map[string]any{{"s": "-0.5e-3"}, {"s": "true"}, {"s": `{"a":"x\ty","b":[1]}`}},
		db.rows(`SELECT s FROM `+copied+` WHERE id >= 100 ORDER BY id`))
}

// A batch whose records fall into several copied groups (different
// fields, updates, deletes) stages each in turn within one transaction,
// and a value that cannot be encoded fails its record alone.
func TestCopyGroupsInOneBatch(t *testing.T) {
	db := newDB(t)
	table := db.schema + ".people"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, name text, age int)`)
	db.exec(`INSERT INTO ` + table + ` VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)`)
	dst := db.open(table, opts)
	errs := write(t, dst, batch(
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 4}, Data: map[string]any{"name": "four"}},
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 5}, Data: map[string]any{"name": "five", "age": 5}},
		record.Record{Op: record.OpUpdate, Key: map[string]any{"id": 1}, Data: map[string]any{"age": 10}},
		record.Record{Op: record.OpDelete, Key: map[string]any{"id": 2}},
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 6}, Data: map[string]any{"name": "six", "age": math.NaN()}},
		record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 7}, Data: map[string]any{"name": "seven"}},
	))
	for i, err := range errs {
		if i == 4 {
			assert.ErrorContains(t, err, `field "age"`)
			continue
		}
		assert.NoError(t, err, "record %d", i)
	}
	rows := db.rows("SELECT id, name, age FROM " + table + " ORDER BY id")
	assert.Equal(t, []map[string]any{
		{"id": json.Number("1"), "name": "one", "age": json.Number("10")},
		{"id": json.Number("3"), "name": "three", "age": json.Number("3")},
		{"id": json.Number("4"), "name": "four", "age": nil},
		{"id": json.Number("5"), "name": "five", "age": json.Number("5")},
		{"id": json.Number("7"), "name": "seven", "age": nil},
	}, rows)

	// The next batch on the same connections starts from an empty stage.
	requireDelivered(t, write(t, dst, batch(record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 8}, Data: map[string]any{"name": "eight"}})))
	assert.Equal(t, 6, db.count(table))
}

// A user who may not create temporary tables still writes, the JSON way.
func TestWithoutTemporaryTablesRowsGoAsJSON(t *testing.T) {
	db := newDB(t)
	user := db.schema + "_user"
	table := db.schema + ".t"
	db.exec(`CREATE TABLE ` + table + ` (id int PRIMARY KEY, name text)`)
	db.exec(`CREATE ROLE ` + user + ` LOGIN`)
	t.Cleanup(func() {
		db.exec(`DROP OWNED BY ` + user)
		db.exec(`DROP ROLE ` + user)
	})
	onDatabase := func(sql string) string {
		return `DO $$ BEGIN EXECUTE format('` + sql + `', current_database()); END $$`
	}
	db.exec(onDatabase(`REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC`))
	t.Cleanup(func() { db.exec(onDatabase(`GRANT TEMPORARY ON DATABASE %I TO PUBLIC`)) })
	db.exec(`GRANT USAGE ON SCHEMA ` + db.schema + ` TO ` + user)
	db.exec(`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + table + ` TO ` + user)

	dst, err := postgres.Open(t.Context(), map[string]any{"dsn": withUser(dsn(), user), "table": table}, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dst.Close() })
	requireDelivered(t, write(t, dst, batch(record.Record{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"name": "one"}})))
	assert.Equal(t, 1, db.count(table))
}

// withUser is dsn connecting as user, without a password (trust auth).
func withUser(dsn, user string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		u.User = url.User(user)
		return u.String()
	}
	return dsn + " user=" + user
}
