// Package capture is a webhook receiver that records what Ebb sends: the
// batches, every record in arrival order, and the resulting state of the
// "destination table". End-to-end tests assert on it, and `ebb dev --demo`
// uses it as a destination that needs nothing installed. Knobs let tests
// make it reject records, go down, fail now and then, rate-limit, or slow
// down.
package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ebb-etl/ebb/libs/destination/webhook"
	"github.com/ebb-etl/ebb/libs/record"
)

// MaxSignatureAge is how old a signed request may be before it is refused.
const MaxSignatureAge = 5 * time.Minute

// maxBody bounds one request body.
const maxBody = 64 << 20

// Options configure a Server.
type Options struct {
	// Secret, when set, makes the server verify X-Ebb-Signature and answer
	// 401 to requests that do not carry a valid one.
	Secret string
	// File, when set, gets one JSON line per accepted record.
	File string
}

// Record is one received record. Numbers are json.Number, so values compare
// exactly with what was sent.
type Record struct {
	ReceivedAt time.Time      `json:"received_at"`
	BatchID    string         `json:"batch_id"`
	Sync       string         `json:"-"`
	RunID      string         `json:"-"`
	Op         record.Op      `json:"op"`
	Key        map[string]any `json:"key"`
	Data       map[string]any `json:"data,omitempty"`
}

// Server is the receiver. It is safe for concurrent use.
type Server struct {
	opts Options

	mu         sync.Mutex
	reject     func(Record) (int, string)
	fail       func(Record) string
	down       bool
	latency    time.Duration
	flakyEvery int // every n-th request answers 500; 0: never
	requests   int // requests seen by the flaky and rate-limit knobs
	interval   time.Duration
	retryAfter time.Duration
	nextFree   time.Time // when the rate limit admits the next request
	throttled  int
	flaked     int
	records    []Record
	state      map[string]map[string]any
	batchKeys  []string
	seen       map[string]bool
	duplicates int
	rejected   int
	counts     map[string]int

	srv *http.Server
}

// New returns a Server; Start serves it, or mount Handler yourself.
func New(opts Options) *Server {
	return &Server{
		opts:   opts,
		state:  map[string]map[string]any{},
		seen:   map[string]bool{},
		counts: map[string]int{},
	}
}

// Start serves on addr ("127.0.0.1:0" picks a free port) and returns the
// URL to configure as the webhook's url.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("capture: listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/", nil
}

// Close stops the server started by Start; in-flight requests are cut.
func (s *Server) Close() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Reject makes the server refuse a whole batch with status and reason when
// fn returns a non-zero status for any of its records, so the sender has to
// split the batch to find the culprit. nil turns it off.
func (s *Server) Reject(fn func(rec Record) (status int, reason string)) {
	s.mu.Lock()
	s.reject = fn
	s.mu.Unlock()
}

// Fail makes the server accept a batch but report the records for which fn
// returns a non-empty reason as failed, in the per-record error answer.
// nil turns it off.
func (s *Server) Fail(fn func(rec Record) (reason string)) {
	s.mu.Lock()
	s.fail = fn
	s.mu.Unlock()
}

// SetDown makes the server answer 503 to everything while down is true.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// SetFlaky makes every n-th request answer 500 without looking at it, as
// a destination with intermittent failures does; 0 turns it off.
func (s *Server) SetFlaky(n int) {
	s.mu.Lock()
	s.flakyEvery = max(n, 0)
	s.mu.Unlock()
}

// SetRateLimit admits at most perSecond requests a second (evenly spaced,
// no burst) and answers the others 429 with a Retry-After of retryAfter,
// in whole seconds rounded up, as rate-limited APIs do; perSecond 0 turns
// it off.
func (s *Server) SetRateLimit(perSecond float64, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interval, s.retryAfter, s.nextFree = 0, retryAfter, time.Time{}
	if perSecond > 0 {
		s.interval = time.Duration(float64(time.Second) / perSecond)
	}
}

// Throttled returns how many requests the rate limit answered 429.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Flaked returns how many requests SetFlaky answered 500.
func (s *Server) Flaked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flaked
}

// admit applies the flaky and rate-limit knobs to a request: it returns
// the status to answer instead of handling it (0 to handle it) and, for a
// 429, the Retry-After seconds.
func (s *Server) admit(now time.Time) (status int, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.flakyEvery > 0 && s.requests%s.flakyEvery == 0 {
		s.flaked++
		return http.StatusInternalServerError, 0
	}
	if s.interval > 0 {
		if now.Before(s.nextFree) {
			s.throttled++
			return http.StatusTooManyRequests, int((s.retryAfter + time.Second - 1) / time.Second)
		}
		s.nextFree = now.Add(s.interval)
	}
	return 0, 0
}

// Records returns the accepted records in arrival order.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// State returns the destination table: canonical key (see KeyString) to
// the last data written, after upserts, inserts, updates and deletes.
func (s *Server) State() map[string]map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]any, len(s.state))
	for k, v := range s.state {
		out[k] = maps.Clone(v)
	}
	return out
}

// Batches returns how many batches were accepted, duplicates included.
func (s *Server) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batchKeys)
}

// BatchKeys returns the Idempotency-Key of every accepted batch, in arrival
// order, duplicates included.
func (s *Server) BatchKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.batchKeys...)
}

// DuplicateBatches returns how many accepted batches carried an
// Idempotency-Key already accepted before.
func (s *Server) DuplicateBatches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duplicates
}

// Rejected returns how many batches Reject refused.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// Counts returns the number of accepted records per op.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// KeyString is the canonical form of a key used by State: its JSON with
// sorted fields, e.g. {"id":1}.
func KeyString(key map[string]any) string {
	b, err := json.Marshal(key)
	if err != nil {
		return fmt.Sprint(key)
	}
	return string(b)
}

// Handler returns the HTTP handler; any path is accepted.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

type envelope struct {
	Sync    string `json:"sync"`
	RunID   string `json:"run_id"`
	BatchID string `json:"batch_id"`
	Records []struct {
		Op   record.Op      `json:"op"`
		Key  map[string]any `json:"key"`
		Data map[string]any `json:"data"`
	} `json:"records"`
}

type recordError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latency, down, reject, fail := s.latency, s.down, s.reject, s.fail
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if down {
		answer(w, http.StatusServiceUnavailable, "capture server is down")
		return
	}
	switch status, after := s.admit(time.Now()); status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(after))
		answer(w, status, "rate limited")
		return
	case http.StatusInternalServerError:
		answer(w, status, "capture server failed (flaky)")
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		answer(w, http.StatusMethodNotAllowed, "send batches with POST, PUT or PATCH")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		status := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status = http.StatusRequestEntityTooLarge
		}
		answer(w, status, "reading body: "+err.Error())
		return
	}
	if s.opts.Secret != "" {
		err := webhook.Verify(s.opts.Secret, r.Header.Get(webhook.HeaderSignature), r.Header.Get(webhook.HeaderTimestamp), body, MaxSignatureAge)
		if err != nil {
			answer(w, http.StatusUnauthorized, err.Error())
			return
		}
	}
	batchKey := r.Header.Get("Idempotency-Key")
	if batchKey == "" {
		answer(w, http.StatusBadRequest, "Idempotency-Key header is required")
		return
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil {
		answer(w, http.StatusBadRequest, "decoding body: "+err.Error())
		return
	}
	now := time.Now().UTC()
	recs := make([]Record, len(env.Records))
	for i, er := range env.Records {
		switch er.Op {
		case record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete:
		default:
			answer(w, http.StatusBadRequest, fmt.Sprintf("records[%d]: unknown op %q", i, er.Op))
			return
		}
		if len(er.Key) == 0 {
			answer(w, http.StatusBadRequest, fmt.Sprintf("records[%d]: key is empty", i))
			return
		}
		recs[i] = Record{ReceivedAt: now, BatchID: env.BatchID, Sync: env.Sync, RunID: env.RunID, Op: er.Op, Key: er.Key, Data: er.Data}
	}

	// The knobs run outside the lock, so they may call the Server.
	if reject != nil {
		for _, rec := range recs {
			if status, reason := reject(rec); status != 0 {
				s.mu.Lock()
				s.rejected++
				s.mu.Unlock()
				answer(w, status, reason)
				return
			}
		}
	}
	var errs []recordError
	kept := recs
	if fail != nil {
		kept = make([]Record, 0, len(recs))
		for i, rec := range recs {
			if reason := fail(rec); reason != "" {
				errs = append(errs, recordError{Index: i, Error: reason})
				continue
			}
			kept = append(kept, rec)
		}
	}
	if err := s.keep(batchKey, kept); err != nil {
		answer(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if len(errs) > 0 {
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
		return
	}
	_, _ = io.WriteString(w, `{"ok":true}`+"\n")
}

// keep records an accepted batch and applies it to the state.
func (s *Server) keep(batchKey string, kept []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The file is written first: if it fails the batch is refused and
	// nothing is recorded, so memory and file never disagree.
	if err := s.appendFile(kept); err != nil {
		return err
	}
	if s.seen[batchKey] {
		s.duplicates++
	}
	s.seen[batchKey] = true
	s.batchKeys = append(s.batchKeys, batchKey)
	for _, rec := range kept {
		s.records = append(s.records, rec)
		s.counts[string(rec.Op)]++
		k := KeyString(rec.Key)
		switch rec.Op {
		case record.OpUpsert, record.OpInsert:
			s.state[k] = rec.Data
		case record.OpUpdate:
			if _, ok := s.state[k]; ok {
				s.state[k] = rec.Data
			}
		case record.OpDelete:
			delete(s.state, k)
		}
	}
	return nil
}

func (s *Server) appendFile(recs []Record) error {
	if s.opts.File == "" || len(recs) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, rec := range recs {
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("capture: encoding record: %w", err)
		}
	}
	f, err := os.OpenFile(s.opts.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("capture: opening %s: %w", s.opts.File, err)
	}
	_, werr := f.Write(buf.Bytes())
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("capture: writing %s: %w", s.opts.File, err)
	}
	return nil
}

func answer(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": reason})
}
