package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/record"
)

// benchBatch is a full batch of typical CRM rows: 500 records of 6 fields.
func benchBatch() destination.Batch {
	recs := make([]record.Record, 500)
	for i := range recs {
		recs[i] = record.Record{
			Op:     record.OpUpsert,
			KeyEnc: record.AppendInt(nil, int64(i)),
			Key:    map[string]any{"id": json.Number(fmt.Sprint(i))},
			Data: map[string]any{
				"email":      fmt.Sprintf("user%d@example.com", i),
				"name":       fmt.Sprintf("User Number %d", i),
				"plan":       "enterprise",
				"mrr":        json.Number("1234.50"),
				"active":     i%2 == 0,
				"created_at": "2024-03-01T12:34:56Z",
			},
		}
	}
	return destination.Batch{ID: "users/run-1/deliver/0/0", Sync: "users", RunID: "run-1", Records: recs}
}

// BenchmarkEncodeBatch measures the request body encoding of the hot path.
func BenchmarkEncodeBatch(b *testing.B) {
	batch := benchBatch()
	b.ReportAllocs()
	for b.Loop() {
		e := getEncoder()
		if errs := e.encodeBatch(batch); errs != nil {
			b.Fatal(errs)
		}
		b.SetBytes(int64(len(e.j.Buf)))
		putEncoder(e)
	}
}

// BenchmarkEncodeBatchStdlib is the baseline: the same body with
// encoding/json.
func BenchmarkEncodeBatchStdlib(b *testing.B) {
	batch := benchBatch()
	b.ReportAllocs()
	for b.Loop() {
		body, err := stdlibBody(batch)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(body)))
	}
}

// BenchmarkWrite measures a whole signed request against a local endpoint.
func BenchmarkWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	d, err := Open(map[string]any{"url": srv.URL, "secret": "s3cret"}, config.DeliveryOptions{Partitions: 1, AckWindow: 4, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	batch := benchBatch()
	body, _ := stdlibBody(batch)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.Write(context.Background(), batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{" 120 ", 2 * time.Minute, true},
		{"-3", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, c := range cases {
		got, ok := retryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
