package bqtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	readapi "cloud.google.com/go/bigquery/storage/apiv1"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// storageServer has dataset d and a read client of its Storage Read API.
func storageServer(t *testing.T, setup ...string) (*Server, *readapi.BigQueryReadClient) {
	s := New(t, "p", 100)
	require.NoError(t, s.ServeStorage())
	for _, q := range append([]string{"CREATE SCHEMA d"}, setup...) {
		require.NoError(t, s.Exec(context.Background(), q), q)
	}
	c, err := readapi.NewBigQueryReadClient(context.Background(), option.WithEndpoint(s.StorageEndpoint()),
		option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return s, c
}

func session(t *testing.T, c *readapi.BigQueryReadClient, table string, streams int32, opts *storagepb.ReadSession_TableReadOptions) *storagepb.ReadSession {
	t.Helper()
	rs, err := c.CreateReadSession(context.Background(), &storagepb.CreateReadSessionRequest{
		Parent:         "projects/p",
		ReadSession:    &storagepb.ReadSession{Table: "projects/p/datasets/d/tables/" + table, DataFormat: storagepb.DataFormat_ARROW, ReadOptions: opts},
		MaxStreamCount: streams,
	})
	require.NoError(t, err)
	return rs
}

// readStream reads a stream from offset, checking each response's shape,
// and returns its records' first column as int64.
func readStream(t *testing.T, c *readapi.BigQueryReadClient, rs *storagepb.ReadSession, stream int, offset int64, batch int64) []int64 {
	t.Helper()
	rows, err := c.ReadRows(context.Background(), &storagepb.ReadRowsRequest{ReadStream: rs.Streams[stream].Name, Offset: offset})
	require.NoError(t, err)
	var ids []int64
	for i := 0; ; i++ {
		resp, err := rows.Recv()
		if errors.Is(err, io.EOF) {
			return ids
		}
		require.NoError(t, err)
		require.Equal(t, i == 0, resp.GetArrowSchema() != nil, "the schema comes with the first response only")
		require.LessOrEqual(t, resp.RowCount, batch)
		require.Equal(t, resp.RowCount, resp.GetArrowRecordBatch().GetRowCount())
		require.Greater(t, resp.GetStats().GetProgress().GetAtResponseEnd(), resp.GetStats().GetProgress().GetAtResponseStart())
		recs := decode(t, rs.GetArrowSchema().GetSerializedSchema(), resp.GetArrowRecordBatch().GetSerializedRecordBatch())
		for _, rec := range recs {
			col := rec.Column(0).(*array.Int64)
			for j := range col.Len() {
				ids = append(ids, col.Value(j))
			}
			rec.Release()
		}
	}
}

// decode reads a batch as the client does: schema and batch as one stream.
func decode(t *testing.T, schema, batch []byte) []arrow.Record {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(append(bytes.Clone(schema), batch...)))
	require.NoError(t, err)
	defer r.Release()
	var recs []arrow.Record
	for r.Next() {
		rec := r.Record()
		rec.Retain()
		recs = append(recs, rec)
	}
	require.NoError(t, r.Err())
	return recs
}

func schemaOf(t *testing.T, rs *storagepb.ReadSession) *arrow.Schema {
	r, err := ipc.NewReader(bytes.NewReader(rs.GetArrowSchema().GetSerializedSchema()))
	require.NoError(t, err)
	defer r.Release()
	return r.Schema()
}

// TestStorageStreams checks a table splits into streams of whole batches
// that together hold each row once, that a read resumes at an offset, and
// that a session reads the table as it was when the session began.
func TestStorageStreams(t *testing.T) {
	s, c := storageServer(t, "CREATE TABLE d.t AS SELECT g AS id, 'n' || g AS name FROM range(2500) AS r(g)")
	rs := session(t, c, "t", 3, nil)
	require.Len(t, rs.Streams, 3)
	require.EqualValues(t, 2500, rs.EstimatedRowCount)
	require.NoError(t, s.Exec(context.Background(), "DELETE FROM d.t WHERE id < 2000"))

	seen := map[int64]int{}
	for i := range rs.Streams {
		ids := readStream(t, c, rs, i, 0, 1000)
		require.IsIncreasing(t, ids)
		for _, id := range ids {
			seen[id]++
		}
	}
	require.Len(t, seen, 2500, "the session's snapshot")
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}

	one := session(t, c, "t", 1, nil)
	require.Len(t, one.Streams, 1)
	require.Equal(t, []int64{2400, 2499}, ends(readStream(t, c, one, 0, 400, 1000)))

	rows, err := c.ReadRows(context.Background(), &storagepb.ReadRowsRequest{ReadStream: one.Streams[0].Name, Offset: 501})
	require.NoError(t, err)
	_, err = rows.Recv()
	require.Equal(t, codes.OutOfRange, status.Code(err), "the stream has 500 rows")
	require.Equal(t, []int64{2, 5}, []int64{s.ReadSessions.Load(), s.ReadRowsCalls.Load()})

	require.NoError(t, s.Exec(context.Background(), "CREATE TABLE d.empty (id BIGINT)"))
	require.Empty(t, session(t, c, "empty", 0, nil).Streams, "an empty table has no streams")
}

func ends(ids []int64) []int64 { return []int64{ids[0], ids[len(ids)-1]} }

// TestStorageReadOptions checks selected_fields (in table order) and
// row_restriction.
func TestStorageReadOptions(t *testing.T) {
	_, c := storageServer(t, "CREATE TABLE d.t AS SELECT g AS id, 'n' || g AS name, g % 3 AS m FROM range(100) AS r(g)")
	rs := session(t, c, "t", 1, &storagepb.ReadSession_TableReadOptions{
		SelectedFields: []string{"m", "id"},
		RowRestriction: "m = 0 AND name != 'n0'",
	})
	sc := schemaOf(t, rs)
	require.Equal(t, []string{"id", "m"}, []string{sc.Field(0).Name, sc.Field(1).Name})
	ids := readStream(t, c, rs, 0, 0, 1000)
	require.Len(t, ids, 33)
	require.Equal(t, []int64{3, 99}, ends(ids))
}

// TestStorageArrowTypes checks the Arrow type of each BigQuery type.
func TestStorageArrowTypes(t *testing.T) {
	_, c := storageServer(t, `CREATE TABLE d.t (i BIGINT, f DOUBLE, n DECIMAL(10,2), big DECIMAL(38,20), s VARCHAR, b BLOB,
		ok BOOLEAN, dt DATE, ts TIMESTAMPTZ, ldt TIMESTAMP, tm TIME, j JSON, iv INTERVAL, st STRUCT(a INTEGER, t VARCHAR[]), l BIGINT[])`)
	sc := schemaOf(t, session(t, c, "t", 1, nil))
	var types []string
	for _, f := range sc.Fields() {
		types = append(types, f.Name+" "+f.Type.String())
	}
	require.Equal(t, []string{
		"i int64", "f float64", "n decimal(38, 9)", "big decimal256(76, 38)", "s utf8", "b binary",
		"ok bool", "dt date32", "ts timestamp[us, tz=UTC]", "ldt timestamp[us]", "tm time64[us]", "j utf8",
		"iv month_day_nano_interval", "st struct<a: int64, t: list<item: utf8, nullable>>", "l list<item: int64, nullable>",
	}, types)
	name, _ := sc.Field(11).Metadata.GetValue("ARROW:extension:name")
	require.Equal(t, "google:sqlType:json", name)
}

// TestStorageErrors checks refusals are gRPC statuses naming what is at
// fault.
func TestStorageErrors(t *testing.T) {
	s, c := storageServer(t, "CREATE TABLE d.t (id BIGINT)")
	ctx := context.Background()
	create := func(table string, format storagepb.DataFormat) error {
		_, err := c.CreateReadSession(ctx, &storagepb.CreateReadSessionRequest{
			Parent:      "projects/p",
			ReadSession: &storagepb.ReadSession{Table: "projects/p/datasets/d/tables/" + table, DataFormat: format},
		})
		return err
	}
	requireStatus := func(err error, code codes.Code, msg string) {
		t.Helper()
		st, _ := status.FromError(err)
		require.Equal(t, code, st.Code(), err)
		require.Contains(t, st.Message(), msg)
	}
	requireStatus(create("t", storagepb.DataFormat_AVRO), codes.InvalidArgument, "ARROW only")
	requireStatus(create("nope", storagepb.DataFormat_ARROW), codes.NotFound, "Not found: Table p:d.nope")
	s.DenyTable("d.t", "bigquery.tables.getData")
	requireStatus(create("t", storagepb.DataFormat_ARROW), codes.PermissionDenied, "Permission bigquery.tables.getData denied")

	rows, err := c.ReadRows(ctx, &storagepb.ReadRowsRequest{ReadStream: "projects/p/locations/us/sessions/x/streams/0"})
	require.NoError(t, err)
	_, err = rows.Recv()
	requireStatus(err, codes.NotFound, "Not found: read stream")

	_, err = c.SplitReadStream(ctx, &storagepb.SplitReadStreamRequest{Name: "x"})
	requireStatus(err, codes.Unimplemented, "")
}
