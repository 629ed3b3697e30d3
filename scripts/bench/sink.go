package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// sink is the benchmark's destination: an HTTP server that accepts webhook
// batches ({"sync","run_id","batch_id","records":[...]}), checks that each
// is valid JSON and counts its records. It can take a fixed time per
// request and enforce a rate limit with 429 and Retry-After.
type sink struct {
	latency time.Duration
	limit   *rate.Limiter // nil: no limit

	records   atomic.Int64
	requests  atomic.Int64
	throttled atomic.Int64
	bad       atomic.Int64
	inFlight  atomic.Int64
	maxFlight atomic.Int64

	mu     sync.Mutex
	perRun map[string]int64
	first  time.Time
	last   time.Time
	notify chan struct{} // closed and replaced on every accepted batch

	srv *http.Server
	url string
}

type sinkOptions struct {
	latency time.Duration
	rps     float64 // requests per second accepted; 0: unlimited
}

func startSink(o sinkOptions) (*sink, error) {
	s := &sink{latency: o.latency, perRun: map[string]int64{}, notify: make(chan struct{})}
	if o.rps > 0 {
		// A second's worth of burst, as "N requests per second" APIs allow.
		s.limit = rate.NewLimiter(rate.Limit(o.rps), int(max(o.rps, 1)))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String() + "/hook"
	go s.srv.Serve(ln)
	return s, nil
}

func (s *sink) close() { _ = s.srv.Close() }

type envelope struct {
	Sync    string            `json:"sync"`
	RunID   string            `json:"run_id"`
	BatchID string            `json:"batch_id"`
	Records []json.RawMessage `json:"records"`
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxFlight.Load()
		if n <= m || s.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if _, err := io.Copy(buf, r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.limit != nil && !s.limit.Allow() {
		s.throttled.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	}
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	var env envelope
	if err := json.Unmarshal(buf.Bytes(), &env); err != nil {
		s.bad.Add(1)
		http.Error(w, "bad batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	s.records.Add(int64(len(env.Records)))
	now := time.Now()
	s.mu.Lock()
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	s.perRun[env.RunID] += int64(len(env.Records))
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// reset forgets what was received.
func (s *sink) reset() {
	s.records.Store(0)
	s.requests.Store(0)
	s.throttled.Store(0)
	s.bad.Store(0)
	s.maxFlight.Store(0)
	s.mu.Lock()
	s.perRun = map[string]int64{}
	s.first, s.last = time.Time{}, time.Time{}
	s.mu.Unlock()
}

// span is the time between the first and the last accepted batch.
func (s *sink) span() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.Sub(s.first)
}

// waitRun waits until the sink holds want records of a run.
func (s *sink) waitRun(ctx context.Context, runID string, want int64) error {
	for {
		s.mu.Lock()
		got, ch := s.perRun[runID], s.notify
		s.mu.Unlock()
		if got >= want {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sink has %d of %d records of run %s: %w", got, want, runID, ctx.Err())
		}
	}
}
