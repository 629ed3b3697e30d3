// Package apitest runs local servers that implement the documented
// contracts of the SaaS APIs Ebb writes to, for the destinations' contract
// tests: they check request shapes and credentials strictly and answer a
// wrong shape the way the real API does, enforce the API's batch limits
// with its own error, keep what they were sent, and can be scripted to
// throttle (429 with Retry-After) or fail before their own logic runs.
package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// Reply is a scripted answer.
type Reply struct {
	Status     int
	RetryAfter int // seconds; sent as Retry-After when > 0
	Body       string
}

// Throttle is the usual scripted 429.
func Throttle(seconds int) Reply {
	return Reply{Status: http.StatusTooManyRequests, RetryAfter: seconds, Body: `{"message":"rate limited"}`}
}

// base is what every API server shares: the scripted replies, request
// counts and the handler plumbing.
type base struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []Reply
	requests int
	headers  []http.Header
}

func (b *base) start(t testing.TB, h http.HandlerFunc) {
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.requests++
		b.headers = append(b.headers, r.Header.Clone())
		var next *Reply
		if len(b.script) > 0 {
			next = &b.script[0]
			b.script = b.script[1:]
		}
		b.mu.Unlock()
		if next != nil {
			if next.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(next.RetryAfter))
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(next.Status)
			_, _ = io.WriteString(w, next.Body)
			return
		}
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
}

// URL is the server's base URL.
func (b *base) URL() string { return b.srv.URL }

// Script makes the next requests get these replies, in order, before the
// API's own logic runs.
func (b *base) Script(replies ...Reply) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.script = append(b.script, replies...)
}

// Requests is how many requests arrived, scripted ones included.
func (b *base) Requests() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests
}

// Headers returns the headers of every request, in order.
func (b *base) Headers() []http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]http.Header(nil), b.headers...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}

// readBody reads at most limit+1 bytes, so the caller can tell a body over
// the limit.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, limit+1))
}

// decodeStrict decodes JSON, numbers as json.Number.
func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}
