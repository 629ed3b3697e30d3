package bqtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	bq "cloud.google.com/go/bigquery"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// countingTransport counts the requests to resumable upload sessions.
type countingTransport struct{ chunks atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Get("upload_id") != "" {
		c.chunks.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// loadClient is a client of the server, counting upload chunks.
func loadClient(t *testing.T, s *Server) (*bq.Client, *countingTransport) {
	tr := &countingTransport{}
	c, err := bq.NewClient(context.Background(), s.Project, option.WithEndpoint(s.Endpoint()),
		option.WithHTTPClient(&http.Client{Transport: tr}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, tr
}

// loadServer has dataset d with table d.t.
func loadServer(t *testing.T, cols string) *Server {
	s := New(t, "p", 100)
	require.NoError(t, s.Exec(context.Background(), "CREATE SCHEMA d"))
	require.NoError(t, s.Exec(context.Background(), "CREATE TABLE d.t ("+cols+")"))
	return s
}

// runLoad loads data into d.t and waits for the job.
func runLoad(t *testing.T, c *bq.Client, data string, configure func(*bq.ReaderSource, *bq.Loader)) *bq.JobStatus {
	t.Helper()
	src := bq.NewReaderSource(strings.NewReader(data))
	l := c.Dataset("d").Table("t").LoaderFrom(src)
	configure(src, l)
	job, err := l.Run(context.Background())
	require.NoError(t, err)
	status, err := job.Wait(context.Background())
	require.NoError(t, err)
	return status
}

func loadedRows(t *testing.T, st *bq.JobStatus) int64 {
	t.Helper()
	require.NoError(t, st.Err())
	return st.Statistics.Details.(*bq.LoadStatistics).OutputRows
}

func (s *Server) dump(t *testing.T, sql string) []string {
	t.Helper()
	rows, err := s.db.Query(sql)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestLoadResumable checks an upload bigger than a chunk goes through a
// resumable session, chunk by chunk, and loads every row.
func TestLoadResumable(t *testing.T) {
	s := loadServer(t, "k BIGINT, s VARCHAR, b BLOB")
	c, tr := loadClient(t, s)
	var data strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&data, `{"k": %d, "S": "row \"%d\"\n", "b": "AP8="}`+"\n", i, i)
	}
	require.Greater(t, data.Len(), 3*256<<10)
	st := runLoad(t, c, data.String(), func(src *bq.ReaderSource, l *bq.Loader) {
		src.SourceFormat = bq.JSON
		l.MediaOptions = []googleapi.MediaOption{googleapi.ChunkSize(256 << 10)}
	})
	require.EqualValues(t, 20_000, loadedRows(t, st))
	stats := st.Statistics.Details.(*bq.LoadStatistics)
	require.EqualValues(t, data.Len(), stats.InputFileBytes)
	require.EqualValues(t, 1, stats.InputFiles)
	require.EqualValues(t, (data.Len()+256<<10-1)/(256<<10), tr.chunks.Load())
	require.Equal(t, []string{"20000 199990000 20000"},
		s.dump(t, `SELECT count(*) || ' ' || sum(k) || ' ' || count(*) FILTER (WHERE s = 'row "' || k || '"'||chr(10) AND b = '\x00\xFF'::BLOB) FROM d.t`))
	s.mu.Lock()
	require.Empty(t, s.uploads, "the session is closed")
	s.mu.Unlock()
}

// TestLoadCSV checks CSV options and that the text of other types is cast
// to the column types.
func TestLoadCSV(t *testing.T) {
	s := loadServer(t, "k INTEGER, d DATE, n DECIMAL(10,2), ok BOOLEAN, x DOUBLE, s VARCHAR")
	c, _ := loadClient(t, s)
	data := "k,d,n,ok,x,s\n1,2024-02-29,1.25,true,0.5,\"a,\"\"b\"\"\nc\"\n2,,,0,NaN,\n3,2024-01-01\n"
	st := runLoad(t, c, data, func(src *bq.ReaderSource, l *bq.Loader) {
		src.SourceFormat = bq.CSV
		src.SkipLeadingRows = 1
		src.AllowQuotedNewlines = true
		src.AllowJaggedRows = true
		l.WriteDisposition = bq.WriteTruncate
	})
	require.EqualValues(t, 3, loadedRows(t, st))
	require.Equal(t, []string{"1|2024-02-29|1.25|true|0.5|a,\"b\"\nc", "2|NULL|NULL|false|nan|NULL", "3|2024-01-01|NULL|NULL|NULL|NULL"},
		s.dump(t, "SELECT concat_ws('|', k, coalesce(d::VARCHAR, 'NULL'), coalesce(n::VARCHAR, 'NULL'), coalesce(ok::VARCHAR, 'NULL'), "+
			"coalesce(x::VARCHAR, 'NULL'), coalesce(s, 'NULL')) FROM d.t ORDER BY k"))

	st = runLoad(t, c, "9,2024-13-01\n", func(src *bq.ReaderSource, l *bq.Loader) { src.AllowJaggedRows = true })
	require.ErrorContains(t, st.Err(), "Error while reading data, error message: Conversion Error")
	require.Len(t, s.dump(t, "SELECT k::VARCHAR FROM d.t"), 3, "a failed load appends nothing")
}

// TestLoadRowErrors checks rows in error fail the job past maxBadRecords,
// with BigQuery's errorResult and each row's error in status.errors.
func TestLoadRowErrors(t *testing.T) {
	s := loadServer(t, "k BIGINT, s VARCHAR")
	c, _ := loadClient(t, s)
	data := `{"k": 1, "s": "a"}` + "\n" + `{"k": "x"}` + "\n" + `{"k": 3, "z": 1}` + "\n"
	st := runLoad(t, c, data, func(src *bq.ReaderSource, _ *bq.Loader) { src.SourceFormat = bq.JSON })
	require.Equal(t, &bq.Error{Reason: "invalid", Message: "Error while reading data, error message: JSON table encountered too many errors, giving up. " +
		"Rows: 2; errors: 1. Please look into the errors[] collection for more details."}, st.Err())
	require.Len(t, st.Errors, 2)
	require.Equal(t, "Error while reading data, error message: JSON parsing error in row starting at position 19: "+
		"Could not convert value to INTEGER. Field: k; Value: x", st.Errors[1].Message)

	st = runLoad(t, c, data, func(src *bq.ReaderSource, l *bq.Loader) {
		src.SourceFormat = bq.JSON
		src.MaxBadRecords = 2
	})
	require.EqualValues(t, 1, loadedRows(t, st))

	st = runLoad(t, c, `{"k": 3, "z": 1}`, func(src *bq.ReaderSource, l *bq.Loader) {
		src.SourceFormat = bq.JSON
		src.IgnoreUnknownValues = true
	})
	require.EqualValues(t, 1, loadedRows(t, st))

	st = runLoad(t, c, "1,a,b\n", func(*bq.ReaderSource, *bq.Loader) {})
	require.Equal(t, "Error while reading data, error message: Too many values in row starting at position: 0.", st.Errors[1].Message)

	st = runLoad(t, c, "1,a\n", func(_ *bq.ReaderSource, l *bq.Loader) { l.WriteDisposition = bq.WriteEmpty })
	require.Equal(t, &bq.Error{Reason: "duplicate", Message: "Already Exists: Table p:d.t"}, st.Err())
	require.Equal(t, []string{"1", "3"}, s.dump(t, "SELECT k::VARCHAR FROM d.t ORDER BY k"))
}

// TestLoadRefused checks what fails the request, and what fails the job.
func TestLoadRefused(t *testing.T) {
	s := loadServer(t, "k BIGINT")
	c, _ := loadClient(t, s)
	src := bq.NewReaderSource(strings.NewReader("1\n"))
	src.SourceFormat = bq.Avro
	_, err := c.Dataset("d").Table("t").LoaderFrom(src).Run(context.Background())
	require.ErrorContains(t, err, "This server loads CSV and NEWLINE_DELIMITED_JSON only, not AVRO")

	src = bq.NewReaderSource(strings.NewReader("1\n"))
	job, err := c.Dataset("d").Table("missing").LoaderFrom(src).Run(context.Background())
	require.NoError(t, err)
	st, err := job.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, &bq.Error{Reason: "notFound", Message: "Not found: Table p:d.missing"}, st.Err())

	_, err = c.Dataset("d").Table("t").LoaderFrom(bq.NewGCSReference("gs://b/o")).Run(context.Background())
	require.ErrorContains(t, err, "This server reads no Cloud Storage URIs")

	s.DenyJobs(true)
	_, err = c.Dataset("d").Table("t").LoaderFrom(bq.NewReaderSource(strings.NewReader("1\n"))).Run(context.Background())
	require.ErrorContains(t, err, "User does not have bigquery.jobs.create permission")
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		h                  string
		first, last, total int64
		bad                bool
	}{
		{h: "bytes 0-9/*", first: 0, last: 9, total: -1},
		{h: "bytes 10-19/20", first: 10, last: 19, total: 20},
		{h: "bytes */20", first: -1, last: -1, total: 20},
		{h: "bytes */*", bad: true},
		{h: "bytes 5-2/*", bad: true},
		{h: "bytes 0-20/20", bad: true},
		{h: "0-1/2", bad: true},
	} {
		first, last, total, err := parseContentRange(tc.h)
		if tc.bad {
			require.Error(t, err, tc.h)
			continue
		}
		require.NoError(t, err, tc.h)
		require.Equal(t, []int64{tc.first, tc.last, tc.total}, []int64{first, last, total}, tc.h)
	}
}
