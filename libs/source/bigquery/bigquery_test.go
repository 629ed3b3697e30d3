package bigquery_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

func TestAcceptance(t *testing.T) {
	sourcetest.Run(t, bqtest.Harness)
}

// TestAcceptanceStorageRead runs the suite with results of more than two
// rows read through the Storage Read API, as bqtest.StorageHarness does,
// counting the reads: the client falls back to pages, silently, when it
// cannot create a read session.
func TestAcceptanceStorageRead(t *testing.T) {
	var reads atomic.Int64
	sourcetest.Run(t, func(t *testing.T) sourcetest.Env {
		srv := bqtest.New(t, bqtest.Project, 2)
		srv.BatchRows = 100
		t.Cleanup(func() { reads.Add(srv.ReadRowsCalls.Load()) })
		return bqtest.StorageEnvOn(t, srv)
	})
	require.Greater(t, reads.Load(), int64(20))
}

func noHash(record.Key, []byte) error              { return nil }
func noRow(record.Key, map[string]any) error       { return nil }
func model(sql string, key ...string) source.Model { return source.Model{SQL: sql, PrimaryKey: key} }

// TestPaging checks results bigger than a page are read page by page.
func TestPaging(t *testing.T) {
	srv := bqtest.New(t, bqtest.Project, 100)
	e := bqtest.EnvOn(t, srv)
	sourcetest.Exec(t, e, "CREATE TABLE ebb_test.big AS SELECT g AS id, 'n' || g AS name FROM range(1050) AS r(g)")
	src := sourcetest.Open(t, e)
	m := model("SELECT * FROM big", "id")

	keys, hashes := sourcetest.Hashes(t, src, m)
	require.Len(t, keys, 1050)
	require.Len(t, hashes, 1050)
	// The first page comes with jobs.query; ten more follow.
	require.Equal(t, int64(10), srv.Pages.Load())

	keys, rows := sourcetest.Rows(t, src, m, record.AppendInt(nil, 99))
	require.Len(t, keys, 950)
	require.Equal(t, map[string]any{"id": int64(100), "name": "n100"}, rows[0])
	require.Equal(t, map[string]any{"id": int64(1049), "name": "n1049"}, rows[949])
	require.Equal(t, int64(19), srv.Pages.Load())
}

// TestAccessDenied checks a 403 names the source's project and the
// permission BigQuery says is missing, and stays a googleapi.Error.
func TestAccessDenied(t *testing.T) {
	srv := bqtest.New(t, bqtest.Project, 100)
	e := bqtest.EnvOn(t, srv)
	sourcetest.Exec(t, e, "CREATE TABLE ebb_test.secret (id INTEGER, ssn VARCHAR)")
	src := sourcetest.Open(t, e)
	srv.DenyTable("ebb_test.secret", "bigquery.tables.getData")

	err := src.ScanHashes(context.Background(), model("SELECT * FROM secret", "id"), noHash)
	require.EqualError(t, err, "running model: bigquery source (project ebb-local) was denied access: "+
		"Access Denied: Table ebb-local:ebb_test.secret: Permission bigquery.tables.getData denied on table "+
		"ebb-local:ebb_test.secret (or it may not exist). (accessDenied)")
	var ge *googleapi.Error
	require.True(t, errors.As(err, &ge))
	require.Equal(t, http.StatusForbidden, ge.Code)

	err = src.ScanRows(context.Background(), model("SELECT * FROM `ebb-local.ebb_test.secret`", "id"), nil, noRow)
	require.ErrorContains(t, err, "Permission bigquery.tables.getData denied")

	srv.DenyJobs(true)
	_, err = src.Columns(context.Background(), "SELECT 1 AS id")
	require.EqualError(t, err, "running model: bigquery source (project ebb-local) was denied access: "+
		"Access Denied: Project ebb-local: User does not have bigquery.jobs.create permission in project ebb-local. (accessDenied)")
}

// TestNotFound checks missing tables and datasets give BigQuery's message.
func TestNotFound(t *testing.T) {
	srv := bqtest.New(t, bqtest.Project, 100)
	src := sourcetest.Open(t, bqtest.EnvOn(t, srv))
	err := src.ScanRows(context.Background(), model("SELECT * FROM ebb_test.nope", "id"), nil, noRow)
	require.EqualError(t, err, "running model: Not found: Table ebb-local:ebb_test.nope was not found in location US (bigquery notFound, HTTP 404)")

	_, err = bigquery.Open(context.Background(), srv.Config("missing"))
	require.EqualError(t, err, `reading dataset "missing": Not found: Dataset ebb-local:missing was not found in location US (bigquery notFound, HTTP 404)`)

	_, err = bigquery.Open(context.Background(), map[string]any{"dataset": "x"})
	require.EqualError(t, err, `bigquery source: config field "project" is required`)
}

// TestUnrepresentable checks a type without a canonical form is refused
// with the column and its type.
func TestUnrepresentable(t *testing.T) {
	e := bqtest.Env(t)
	sourcetest.Exec(t, e, "CREATE TABLE ebb_test.iv (id INTEGER, st STRUCT(wait INTERVAL))")
	src := sourcetest.Open(t, e)
	want := `column "st.wait" has type INTERVAL, which Ebb cannot represent: cast it in the model, e.g. CAST(wait AS STRING)`
	require.EqualError(t, src.ScanHashes(context.Background(), model("SELECT * FROM iv", "id"), noHash), want)
	require.EqualError(t, src.ScanRows(context.Background(), model("SELECT * FROM iv", "id"), nil, noRow), want)
	cols, err := src.Columns(context.Background(), "SELECT * FROM iv")
	require.NoError(t, err)
	require.Equal(t, []source.Column{{Name: "id", Type: "INT64", Int: true}, {Name: "st", Type: "STRUCT<wait INTERVAL>"}}, cols)
}

// TestNestedValues checks STRUCT, ARRAY, JSON, BIGNUMERIC and the civil
// types, and that hashes follow changes inside nested values.
func TestNestedValues(t *testing.T) {
	e := bqtest.Env(t)
	sourcetest.Exec(t, e,
		`CREATE TABLE ebb_test.nested (id INTEGER, st STRUCT(a INTEGER, b VARCHAR, n DECIMAL(38,20), tags VARCHAR[]),
			ints BIGINT[], sts STRUCT(x DOUBLE)[], j JSON, big DECIMAL(38,20), t TIME, dt TIMESTAMP, k VARCHAR)`,
		`INSERT INTO ebb_test.nested VALUES
			(1, {'a': 1, 'b': 'x"y', 'n': 12345678901234567.00000000000000000001, 'tags': ['p', 'q']},
			 [3, -1], [{'x': 0.5}, {'x': NULL}], '{"k": [1, 2.50]}', -0.00000000000000000001, '12:34:56.5',
			 '2024-03-01 12:34:56.123456', 'b'),
			(2, NULL, NULL, [], 'null', 1, NULL, NULL, NULL)`)
	src := sourcetest.Open(t, e)
	m := model("SELECT * FROM nested", "id")
	keys, rows := sourcetest.Rows(t, src, m, nil)
	require.Equal(t, []record.Key{record.AppendInt(nil, 1), record.AppendInt(nil, 2)}, keys)
	require.Equal(t, map[string]any{
		"id":   int64(1),
		"st":   json.RawMessage(`{"a":1,"b":"x\"y","n":12345678901234567.00000000000000000001,"tags":["p","q"]}`),
		"ints": []any{int64(3), int64(-1)},
		"sts":  []any{json.RawMessage(`{"x":0.5}`), json.RawMessage(`{"x":null}`)},
		"j":    json.RawMessage(`{"k": [1, 2.50]}`),
		"big":  json.Number("-0.00000000000000000001"),
		"t":    "12:34:56.5",
		"dt":   "2024-03-01T12:34:56.123456",
		"k":    "b",
	}, rows[0])
	require.Equal(t, map[string]any{
		"id": int64(2), "st": nil, "ints": []any{}, "sts": []any{}, "j": json.RawMessage(`null`),
		"big": json.Number("1"), "t": nil, "dt": nil, "k": nil,
	}, rows[1])
	_, err := json.Marshal(rows)
	require.NoError(t, err)

	_, before := sourcetest.Hashes(t, src, m)
	sourcetest.Exec(t, e, "UPDATE ebb_test.nested SET st = {'a': 1, 'b': 'x\"y', 'n': 1, 'tags': ['p', 'r']} WHERE id = 1")
	_, after := sourcetest.Hashes(t, src, m)
	require.NotEqual(t, before[0], after[0])
	require.Equal(t, before[1], after[1])

	// A text key of another type is compared as its STRING form.
	keys, _ = sourcetest.Hashes(t, src, model("SELECT * FROM nested WHERE id = 1", "dt"))
	require.Equal(t, []record.Key{record.AppendString(nil, "2024-03-01 12:34:56.123456")}, keys)
}
