package bigquery_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
)

// loadRow is the i-th test row: unique keys (the extremes included),
// text with unicode, quotes, backslashes, newlines and control characters,
// bytes with every byte value and empty ones, NULLs in each nullable column.
func loadRow(i int) []any {
	texts := []string{"", "plain", `q"uo'te`, "back\\slash", "new\nline\r\n", "tab\tnul\x00", "Zoë 日本 😀", "</script>&"}
	k := int64(i)
	switch i {
	case 0:
		k = math.MinInt64
	case 1:
		k = math.MaxInt64
	}
	var n, s, h any = int64(i * 7), fmt.Sprintf("%s #%d", texts[i%len(texts)], i), []byte{byte(i), 0, 255, byte(i >> 8)}
	switch i % 11 {
	case 3:
		n = nil
	case 5:
		s = nil
	case 7:
		h = nil
	case 9:
		s, h = texts[i%len(texts)], []byte{}
	}
	return []any{k, n, s, h}
}

// rows returns a next function over the first count test rows.
func rows(count int) func() ([]any, bool, error) {
	i := 0
	return func() ([]any, bool, error) {
		if i == count {
			return nil, false, nil
		}
		i++
		return loadRow(i - 1), true, nil
	}
}

func loadTable(t *testing.T, w *bigquery.Source, name string) {
	t.Helper()
	_, err := w.Exec(context.Background(), source.Stmt{SQL: "CREATE TABLE " + w.Table(name) + " (k INT64, n INT64, s STRING, h BYTES)"})
	require.NoError(t, err)
}

// TestLoadRows loads 50,000 rows in one load job and reads them back
// exactly, NULLs and empty values apart.
func TestLoadRows(t *testing.T) {
	ctx := context.Background()
	srv := bqtest.New(t, bqtest.Project, 1000)
	e := bqtest.EnvOn(t, srv)
	w := openWarehouse(t, e, "snaps")
	require.NoError(t, w.ProbeSchema(ctx))
	loadTable(t, w, "t")

	const count = 50_000
	n, err := w.LoadRows(ctx, "t", rows(count))
	require.NoError(t, err)
	require.EqualValues(t, count, n)

	want := map[int64]map[string]any{}
	for i := range count {
		r := loadRow(i)
		row := map[string]any{"k": r[0], "n": r[1], "s": r[2], "h": nil}
		if h, ok := r[3].([]byte); ok {
			row["h"] = base64.StdEncoding.EncodeToString(h)
		}
		want[r[0].(int64)] = row
	}
	got := 0
	err = w.ScanRows(ctx, model("SELECT * FROM snaps.t", "k"), nil, func(_ record.Key, row map[string]any) error {
		require.Equal(t, want[row["k"].(int64)], row)
		got++
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, count, got)

	n, err = w.LoadRows(ctx, "t", rows(3))
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "a second load appends")
	total, err := w.QueryInt(ctx, "SELECT count(*) FROM "+w.Table("t"))
	require.NoError(t, err)
	require.EqualValues(t, count+3, total)

	n, err = w.LoadRows(ctx, "t", rows(0))
	require.NoError(t, err)
	require.Zero(t, n, "no rows, no job")
}

// TestLoadRowsErrors checks errors name the table, and that a failed load
// appends nothing.
func TestLoadRowsErrors(t *testing.T) {
	ctx := context.Background()
	srv := bqtest.New(t, bqtest.Project, 1000)
	e := bqtest.EnvOn(t, srv)
	w := openWarehouse(t, e, "snaps")
	require.NoError(t, w.ProbeSchema(ctx))
	loadTable(t, w, "t")
	_, err := w.LoadRows(ctx, "t", rows(10))
	require.NoError(t, err)

	short := rows(2000)
	i := 0
	_, err = w.LoadRows(ctx, "t", func() ([]any, bool, error) {
		if i++; i == 1500 {
			return []any{int64(-1), "x"}, true, nil
		}
		return short()
	})
	require.EqualError(t, err, `loading rows into table "snaps.t": row 1500 has 2 values for the table's 4 columns`)

	_, err = w.LoadRows(ctx, "t", func() ([]any, bool, error) {
		return []any{"1", nil, nil, nil}, true, nil
	})
	require.EqualError(t, err, `loading rows into table "snaps.t": row 1: column "k": a string for a column of type INT64`)

	boom := errors.New("boom")
	_, err = w.LoadRows(ctx, "t", func() ([]any, bool, error) { return nil, false, boom })
	require.ErrorIs(t, err, boom)
	require.EqualError(t, err, `loading rows into table "snaps.t": boom`)

	_, err = w.LoadRows(ctx, "nope", rows(1))
	require.EqualError(t, err, `loading rows into table "snaps.nope": Not found: Table ebb-local:snaps.nope was not found in location US (bigquery notFound, HTTP 404)`)

	srv.DenyTable("snaps.t", "bigquery.tables.updateData")
	_, err = w.LoadRows(ctx, "t", rows(1))
	require.EqualError(t, err, `loading rows into table "snaps.t": bigquery source (project ebb-local) was denied access: `+
		"Access Denied: Table ebb-local:snaps.t: Permission bigquery.tables.updateData denied on table ebb-local:snaps.t (or it may not exist). (accessDenied)")
	srv.AllowTable("snaps.t")

	total, err := w.QueryInt(ctx, "SELECT count(*) FROM "+w.Table("t"))
	require.NoError(t, err)
	require.EqualValues(t, 10, total, "the failed loads appended nothing")
}
