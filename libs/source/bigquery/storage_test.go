package bigquery_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// openPaged opens a source of the server's test dataset without the
// Storage Read API, to compare with.
func openPaged(t *testing.T, srv *bqtest.Server) source.Source {
	src, err := bigquery.Open(context.Background(), srv.Config(bqtest.Dataset))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	return src
}

// TestStorageRead checks a model larger than a page is read through the
// Storage Read API, in one stream, in key order, batch by batch, and reads
// as it reads page by page.
func TestStorageRead(t *testing.T) {
	srv := bqtest.New(t, bqtest.Project, 100)
	e := bqtest.StorageEnvOn(t, srv)
	sourcetest.Exec(t, e, "CREATE TABLE ebb_test.big AS SELECT g AS id, 'n' || g AS name FROM range(2500) AS r(g) ORDER BY random()")
	src := sourcetest.Open(t, e)
	m := model("SELECT * FROM big", "id")

	keys, hashes := sourcetest.Hashes(t, src, m)
	require.Len(t, keys, 2500)
	require.Equal(t, record.AppendInt(nil, 0), keys[0])
	require.Equal(t, record.AppendInt(nil, 2499), keys[2499])
	require.EqualValues(t, 1, srv.ReadSessions.Load())
	require.EqualValues(t, 1, srv.ReadRowsCalls.Load(), "an ordered query is read in one stream")
	require.EqualValues(t, 3, srv.RecordBatches.Load(), "batches of 1,000 rows")
	require.Zero(t, srv.Pages.Load(), "no result pages")

	rowKeys, rows := sourcetest.Rows(t, src, m, record.AppendInt(nil, 99))
	require.Equal(t, keys[100:], rowKeys)
	require.Equal(t, map[string]any{"id": int64(100), "name": "n100"}, rows[0])
	require.EqualValues(t, 2, srv.ReadRowsCalls.Load())
	require.Zero(t, srv.Pages.Load())

	paged := openPaged(t, srv)
	pagedKeys, pagedHashes := sourcetest.Hashes(t, paged, m)
	require.Equal(t, keys, pagedKeys)
	require.Equal(t, hashes, pagedHashes)
	require.EqualValues(t, 2, srv.ReadRowsCalls.Load(), "the paged source reads no stream")
	require.EqualValues(t, 24, srv.Pages.Load())

	w := src.(*bigquery.Source)
	n, err := w.QueryInt(context.Background(), "SELECT count(*) FROM ebb_test.big")
	require.NoError(t, err)
	require.EqualValues(t, 2500, n)
	require.EqualValues(t, 2, srv.ReadRowsCalls.Load(), "a one-page result is read from the query's answer")

	// An unordered query may be read in several streams at once (the
	// client asks for as many as it has CPUs).
	seen := map[string]bool{}
	err = w.ScanKeys(context.Background(), "SELECT id, name FROM ebb_test.big", 1, func(k record.Key, _ []byte) error {
		seen[k.String()] = true
		return nil
	})
	require.NoError(t, err)
	require.Len(t, seen, 2500)
	require.EqualValues(t, 3, srv.ReadSessions.Load())
	require.GreaterOrEqual(t, srv.ReadRowsCalls.Load(), int64(3))
}

// TestStorageReadTypes checks every type reads through the Storage Read
// API as it reads page by page, and hashes alike.
func TestStorageReadTypes(t *testing.T) {
	srv := bqtest.New(t, bqtest.Project, 2)
	e := bqtest.StorageEnvOn(t, srv)
	sourcetest.Exec(t, e,
		`CREATE TYPE mood AS ENUM ('sad', 'ok')`,
		`CREATE TABLE ebb_test.types (id INTEGER, i8 TINYINT, u32 UINTEGER, u64 UBIGINT, h HUGEINT, f FLOAT, d DOUBLE,
			n DECIMAL(10,2), big DECIMAL(38,20), s VARCHAR, u UUID, e mood, b BLOB, ok BOOLEAN, dt DATE, ts TIMESTAMPTZ,
			ldt TIMESTAMP, ns TIMESTAMP_NS, tm TIME, j JSON,
			st STRUCT(a INTEGER, b VARCHAR, n DECIMAL(38,20), tags VARCHAR[]), ints BIGINT[], sts STRUCT(x DOUBLE)[],
			dts DATE[], bs BLOB[])`,
		`INSERT INTO ebb_test.types VALUES
			(1, -128, 4294967295, 18446744073709551615, -170141183460469231731687303715884105728, 1.5, 'NaN', -12.34,
			 -0.00000000000000000001, 'Zoë "q"'||chr(10), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ok', '\x00\xFF'::BLOB, true,
			 '1969-12-31', '1900-01-01 00:00:00.000001+00', '2024-03-01 12:34:56.123456', '2024-03-01 12:34:56.123456789',
			 '23:59:59.999999', '{"k": [1, 2.50], "s": "x"}',
			 {'a': 1, 'b': 'x"y', 'n': 12345678901234567.00000000000000000001, 'tags': ['p', 'q']},
			 [3, -1], [{'x': 0.5}, {'x': NULL}], ['2024-02-29'], ['\x01'::BLOB]),
			(2, NULL, NULL, NULL, NULL, NULL, 'Infinity', NULL, NULL, '', NULL, NULL, ''::BLOB, false, NULL, NULL, NULL, NULL,
			 '00:00:00', 'null', NULL, NULL, [], NULL, []),
			(3, 127, 0, 0, 170141183460469231731687303715884105727, -0.0, '-Infinity', 99999999.99, 1,
			 '日本', NULL, 'sad', NULL, NULL, '9999-12-31', '9999-12-31 23:59:59.999999+00', '0001-01-01 00:00:00', NULL,
			 '12:00:00', '[]', {'a': NULL, 'b': NULL, 'n': NULL, 'tags': []}, [], NULL, [], NULL)`)
	src := sourcetest.Open(t, e)
	paged := openPaged(t, srv)
	m := model("SELECT * FROM types", "id")

	keys, rows := sourcetest.Rows(t, src, m, nil)
	require.EqualValues(t, 1, srv.ReadRowsCalls.Load())
	pagedKeys, pagedRows := sourcetest.Rows(t, paged, m, nil)
	require.Equal(t, pagedKeys, keys)
	require.Equal(t, pagedRows, rows)
	require.Len(t, rows, 3)
	require.Equal(t, "Zoë \"q\"\n", rows[0]["s"])
	require.Equal(t, []any{}, rows[1]["ints"], "a NULL array reads as an empty one")

	_, hashes := sourcetest.Hashes(t, src, m)
	_, pagedHashes := sourcetest.Hashes(t, paged, m)
	require.Equal(t, pagedHashes, hashes)
}

// TestStorageReadStopEarly checks a scan that stops early ends its stream
// and leaves none of the client's stream goroutines behind.
func TestStorageReadStopEarly(t *testing.T) {
	srv := bqtest.New(t, bqtest.Project, 2)
	srv.BatchRows = 10
	e := bqtest.StorageEnvOn(t, srv)
	sourcetest.Exec(t, e, "CREATE TABLE ebb_test.big AS SELECT g AS id FROM range(5000) AS r(g)")
	src := sourcetest.Open(t, e)
	m := model("SELECT * FROM big", "id")

	stop := errors.New("stop")
	n := 0
	err := src.ScanHashes(context.Background(), m, func(record.Key, []byte) error {
		if n++; n == 25 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.EqualValues(t, 1, srv.ReadRowsCalls.Load())
	require.Eventually(t, func() bool { return srv.ActiveReads() == 0 }, 10*time.Second, 10*time.Millisecond, "the stream ended")
	require.Eventually(t, func() bool { return !streamGoroutines() }, 10*time.Second, 10*time.Millisecond,
		"the client's stream goroutine is left")
}

// streamGoroutines tells whether a goroutine of the client's Storage Read
// iterator runs.
func streamGoroutines() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "storageArrowIterator")
}

// TestStorageReadConfig checks the config fields of the Storage Read API.
func TestStorageReadConfig(t *testing.T) {
	ctx := context.Background()
	srv := bqtest.New(t, bqtest.Project, 2)
	open := func(extra map[string]any) error {
		cfg := srv.Config("")
		for k, v := range extra {
			cfg[k] = v
		}
		src, err := bigquery.Open(ctx, cfg)
		if err == nil {
			require.NoError(t, src.Close())
		}
		return err
	}
	require.EqualError(t, open(map[string]any{"storage_read": "yes"}),
		`bigquery source: config field "storage_read" must be true or false, not string`)
	require.EqualError(t, open(map[string]any{"storage_read": true}),
		`bigquery source: config field "storage_endpoint" is required with "endpoint" when "storage_read" is true`)
	require.EqualError(t, open(map[string]any{"storage_endpoint": "localhost:1"}),
		`bigquery source: config field "storage_endpoint" needs "storage_read": true`)
	require.EqualError(t, open(map[string]any{"storage_read": true, "storage_endpoint": 1}),
		`bigquery source: config field "storage_endpoint" must be a string, not int`)
	require.NoError(t, open(map[string]any{"storage_read": false}))
}
