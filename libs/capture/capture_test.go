package capture_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/webhook"
	"github.com/ebb-etl/ebb/libs/record"
)

var opts = config.DeliveryOptions{BatchSize: 100, Partitions: 1, AckWindow: 4, Timeout: 5 * time.Second}

func start(t *testing.T, o capture.Options) (*capture.Server, string) {
	t.Helper()
	s := capture.New(o)
	url, err := s.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, url
}

func sender(t *testing.T, cfg map[string]any, o config.DeliveryOptions) *webhook.Destination {
	t.Helper()
	d, err := webhook.Open(cfg, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func rec(op record.Op, id int, data map[string]any) record.Record {
	return record.Record{Op: op, KeyEnc: record.AppendInt(nil, int64(id)), Key: map[string]any{"id": id}, Data: data}
}

func batch(id string, recs ...record.Record) destination.Batch {
	return destination.Batch{ID: id, Sync: "users", RunID: "run-1", Records: recs}
}

func key(id int) string { return capture.KeyString(map[string]any{"id": id}) }

func write(t *testing.T, d *webhook.Destination, b destination.Batch) []error {
	t.Helper()
	errs, err := d.Write(context.Background(), b)
	require.NoError(t, err)
	return errs
}

func TestStateAndCounts(t *testing.T) {
	srv, url := start(t, capture.Options{})
	d := sender(t, map[string]any{"url": url}, opts)

	write(t, d, batch("b1",
		rec(record.OpUpsert, 1, map[string]any{"email": "a@x", "n": json.Number("1.50")}),
		rec(record.OpInsert, 2, map[string]any{"email": "b@x"}),
		rec(record.OpUpdate, 3, map[string]any{"email": "ghost@x"}), // absent: no effect
	))
	write(t, d, batch("b2",
		rec(record.OpUpdate, 1, map[string]any{"email": "a2@x"}),
		rec(record.OpDelete, 2, nil),
	))

	assert.Equal(t, map[string]map[string]any{key(1): {"email": "a2@x"}}, srv.State())
	assert.Equal(t, map[string]int{"upsert": 1, "insert": 1, "update": 2, "delete": 1}, srv.Counts())
	assert.Equal(t, 2, srv.Batches())
	assert.Equal(t, []string{"b1", "b2"}, srv.BatchKeys())
	assert.Zero(t, srv.DuplicateBatches())

	recs := srv.Records()
	require.Len(t, recs, 5)
	assert.Equal(t, record.OpUpsert, recs[0].Op)
	assert.Equal(t, "b1", recs[0].BatchID)
	assert.Equal(t, "users", recs[0].Sync)
	assert.Equal(t, "run-1", recs[0].RunID)
	assert.Equal(t, map[string]any{"id": json.Number("1")}, recs[0].Key)
	assert.Equal(t, json.Number("1.50"), recs[0].Data["n"], "numbers stay exact")
	assert.Equal(t, record.OpDelete, recs[4].Op)
	assert.Nil(t, recs[4].Data)
	assert.False(t, recs[0].ReceivedAt.IsZero())

	// Accessors return copies.
	recs[0].Op = "mangled"
	srv.State()[key(1)]["email"] = "mangled"
	assert.Equal(t, record.OpUpsert, srv.Records()[0].Op)
	assert.Equal(t, "a2@x", srv.State()[key(1)]["email"])
}

func TestDuplicateBatches(t *testing.T) {
	srv, url := start(t, capture.Options{})
	d := sender(t, map[string]any{"url": url}, opts)
	b := batch("same", rec(record.OpUpsert, 1, map[string]any{"v": 1}))
	write(t, d, b)
	write(t, d, b)
	assert.Equal(t, 2, srv.Batches())
	assert.Equal(t, 1, srv.DuplicateBatches())
	assert.Len(t, srv.Records(), 2, "duplicates are recorded")
	assert.Len(t, srv.State(), 1)
}

func TestRejectWholeBatch(t *testing.T) {
	srv, url := start(t, capture.Options{})
	srv.Reject(func(r capture.Record) (int, string) {
		if r.Data["email"] == "bad" {
			return http.StatusUnprocessableEntity, "email is invalid"
		}
		return 0, ""
	})
	d := sender(t, map[string]any{"url": url}, opts)
	_, err := d.Write(context.Background(), batch("b1",
		rec(record.OpUpsert, 1, map[string]any{"email": "good"}),
		rec(record.OpUpsert, 2, map[string]any{"email": "bad"}),
	))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "HTTP 422")
	assert.Contains(t, err.Error(), "email is invalid")
	assert.Empty(t, srv.Records(), "nothing of a rejected batch is kept")
	assert.Zero(t, srv.Batches())
	assert.Equal(t, 1, srv.Rejected())

	// The sender splits; the good half goes through.
	write(t, d, batch("b1a", rec(record.OpUpsert, 1, map[string]any{"email": "good"})))
	assert.Len(t, srv.State(), 1)

	srv.Reject(nil)
	write(t, d, batch("b1b", rec(record.OpUpsert, 2, map[string]any{"email": "bad"})))
	assert.Len(t, srv.State(), 2)
}

func TestFailRecords(t *testing.T) {
	srv, url := start(t, capture.Options{})
	srv.Fail(func(r capture.Record) string {
		if r.Data["email"] == "bad" {
			return "email is invalid"
		}
		return ""
	})
	d := sender(t, map[string]any{"url": url}, opts)
	errs := write(t, d, batch("b1",
		rec(record.OpUpsert, 1, map[string]any{"email": "good"}),
		rec(record.OpUpsert, 2, map[string]any{"email": "bad"}),
		rec(record.OpUpsert, 3, map[string]any{"email": "good"}),
	))
	require.Len(t, errs, 3)
	assert.NoError(t, errs[0])
	assert.EqualError(t, errs[1], "email is invalid")
	assert.NoError(t, errs[2])
	assert.Equal(t, map[string]int{"upsert": 2}, srv.Counts())
	assert.NotContains(t, srv.State(), key(2))
}

func TestDownAndLatency(t *testing.T) {
	srv, url := start(t, capture.Options{})
	d := sender(t, map[string]any{"url": url}, opts)
	b := batch("b1", rec(record.OpUpsert, 1, map[string]any{"v": 1}))

	srv.SetDown(true)
	_, err := d.Write(context.Background(), b)
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "HTTP 503")
	assert.Zero(t, srv.Batches())

	srv.SetDown(false)
	write(t, d, b)
	assert.Equal(t, 1, srv.Batches())

	srv.SetLatency(2 * time.Second)
	o := opts
	o.Timeout = 50 * time.Millisecond
	fast := sender(t, map[string]any{"url": url}, o)
	_, err = fast.Write(context.Background(), batch("b2", rec(record.OpUpsert, 2, nil)))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "timed out")
	srv.SetLatency(0)
	assert.Equal(t, 1, srv.Batches(), "a request abandoned during latency is not recorded")
}

func TestSignatureVerification(t *testing.T) {
	srv, url := start(t, capture.Options{Secret: "s3cret"})
	good := sender(t, map[string]any{"url": url, "secret": "s3cret"}, opts)
	write(t, good, batch("b1", rec(record.OpUpsert, 1, nil)))

	for _, cfg := range []map[string]any{{"url": url, "secret": "wrong"}, {"url": url}} {
		bad := sender(t, cfg, opts)
		_, err := bad.Write(context.Background(), batch("b2", rec(record.OpUpsert, 2, nil)))
		require.Error(t, err)
		assert.True(t, destination.IsPermanent(err))
		assert.Contains(t, err.Error(), "HTTP 401")
	}
	assert.Equal(t, 1, srv.Batches())
}

func TestFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "received.jsonl")
	_, url := start(t, capture.Options{File: file})
	d := sender(t, map[string]any{"url": url}, opts)
	write(t, d, batch("b1", rec(record.OpUpsert, 1, map[string]any{"v": "ü"}), rec(record.OpDelete, 2, nil)))
	write(t, d, batch("b2", rec(record.OpUpdate, 1, map[string]any{"v": 2})))

	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		lines = append(lines, m)
	}
	require.NoError(t, sc.Err())
	require.Len(t, lines, 3)
	for _, l := range lines {
		assert.Contains(t, l, "received_at")
	}
	assert.Equal(t, "b1", lines[0]["batch_id"])
	assert.Equal(t, "upsert", lines[0]["op"])
	assert.Equal(t, map[string]any{"id": 1.0}, lines[0]["key"])
	assert.Equal(t, map[string]any{"v": "ü"}, lines[0]["data"])
	assert.Equal(t, "delete", lines[1]["op"])
	assert.NotContains(t, lines[1], "data")
	assert.Equal(t, "b2", lines[2]["batch_id"])
	assert.Len(t, lines[0], 5, "exactly received_at, batch_id, op, key, data")
}

func TestFileFailureRefusesBatch(t *testing.T) {
	srv, url := start(t, capture.Options{File: filepath.Join(t.TempDir(), "missing-dir", "x.jsonl")})
	d := sender(t, map[string]any{"url": url}, opts)
	_, err := d.Write(context.Background(), batch("b1", rec(record.OpUpsert, 1, nil)))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err), "a 500 is retried")
	assert.Zero(t, srv.Batches())
}

func TestBadRequests(t *testing.T) {
	srv := capture.New(capture.Options{})
	url, err := srv.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(srv.Close)

	post := func(idem, body string) int {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusBadRequest, post("", `{"records":[]}`), "no Idempotency-Key")
	assert.Equal(t, http.StatusBadRequest, post("k", `{"records":`), "truncated JSON")
	assert.Equal(t, http.StatusBadRequest, post("k", `{"records":[{"op":"merge","key":{"id":1}}]}`), "unknown op")
	assert.Equal(t, http.StatusBadRequest, post("k", `{"records":[{"op":"upsert","key":{}}]}`), "empty key")
	assert.Equal(t, http.StatusOK, post("k", `{"records":[{"op":"upsert","key":{"id":1},"data":{"a":1}}]}`))

	resp, err := http.Get(url)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, 1, srv.Batches())
}

func TestConcurrentUse(t *testing.T) {
	srv, url := start(t, capture.Options{})
	o := opts
	o.AckWindow = 8
	d := sender(t, map[string]any{"url": url}, o)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			recs := make([]record.Record, 10)
			for j := range recs {
				recs[j] = rec(record.OpUpsert, i*10+j, map[string]any{"v": j})
			}
			_, err := d.Write(context.Background(), batch(fmt.Sprint("b", i), recs...))
			assert.NoError(t, err)
		})
		// Knobs and accessors race with the writes.
		wg.Go(func() {
			srv.SetLatency(0)
			_ = srv.State()
			_ = srv.Counts()
		})
	}
	wg.Wait()
	assert.Len(t, srv.State(), 160)
	assert.Equal(t, 16, srv.Batches())
}

func TestHandlerWithoutStart(t *testing.T) {
	srv := capture.New(capture.Options{})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	d := sender(t, map[string]any{"url": ts.URL}, opts)
	write(t, d, batch("b1", rec(record.OpUpsert, 1, map[string]any{"a": 1})))
	assert.Len(t, srv.State(), 1)
	srv.Close() // harmless when not started
}

func TestFlakyAndRateLimit(t *testing.T) {
	srv, url := start(t, capture.Options{})
	o := opts
	o.MaxAttempts = 1
	d := sender(t, map[string]any{"url": url}, o)

	srv.SetFlaky(2)
	write(t, d, batch("f1", rec(record.OpUpsert, 1, nil)))
	_, err := d.Write(context.Background(), batch("f2", rec(record.OpUpsert, 2, nil)))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err), "a 500 is transient")
	assert.Contains(t, err.Error(), "HTTP 500")
	write(t, d, batch("f3", rec(record.OpUpsert, 3, nil)))
	assert.Equal(t, 1, srv.Flaked())
	srv.SetFlaky(0)

	srv.SetRateLimit(1, 1500*time.Millisecond)
	write(t, d, batch("r1", rec(record.OpUpsert, 4, nil)))
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"records":[]}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"), "rounded up to whole seconds")
	_, err = d.Write(context.Background(), batch("r2", rec(record.OpUpsert, 5, nil)))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err), "a 429 is transient")
	assert.Equal(t, 2, srv.Throttled())
	srv.SetRateLimit(0, 0)
	write(t, d, batch("r3", rec(record.OpUpsert, 6, nil)))
	assert.Equal(t, 4, srv.Batches(), "only the admitted requests were recorded")
}
