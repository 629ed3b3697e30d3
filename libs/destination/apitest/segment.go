package apitest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// Segment limits, from its HTTP tracking API documentation: the batch
// endpoint takes at most 500KB per request and 32KB per call, and answers
// 400 over either.
const (
	SegmentMaxBatchBytes = 500 << 10
	SegmentMaxCallBytes  = 32 << 10
)

// Segment implements POST /v1/batch of the Segment (and RudderStack) HTTP
// tracking API. Segment answers 200 to anything it can parse and checks
// credentials later; this server answers 401 to a wrong write key, as
// RudderStack does, so tests can see auth failures.
type Segment struct {
	base
	writeKey string
	calls    []map[string]any
}

// NewSegment starts a server that accepts writeKey.
func NewSegment(t testing.TB, writeKey string) *Segment {
	s := &Segment{writeKey: writeKey}
	s.start(t, s.handle)
	return s
}

// Calls returns the calls received, in order.
func (s *Segment) Calls() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.calls...)
}

func (s *Segment) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/batch" {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "message": "not found"})
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != s.writeKey || pass != "" {
		writeText(w, http.StatusUnauthorized, "Invalid write key")
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "content-type must be application/json"})
		return
	}
	body, _ := readBody(r, SegmentMaxBatchBytes)
	if len(body) > SegmentMaxBatchBytes {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "Request Entity Too Large"})
		return
	}
	var req struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := decodeStrict(body, &req); err != nil || req.Batch == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "Invalid JSON"})
		return
	}
	calls := make([]map[string]any, 0, len(req.Batch))
	for _, raw := range req.Batch {
		if len(raw) > SegmentMaxCallBytes {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "Message too large"})
			return
		}
		var c map[string]any
		if err := decodeStrict(raw, &c); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "Invalid JSON"})
			return
		}
		if msg := segmentCallError(c); msg != "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": msg})
			return
		}
		calls = append(calls, c)
	}
	s.mu.Lock()
	s.calls = append(s.calls, calls...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func segmentCallError(c map[string]any) string {
	typ, _ := c["type"].(string)
	switch typ {
	case "identify", "track", "group", "page", "screen", "alias":
	default:
		return "unknown type"
	}
	if c["userId"] == nil && c["anonymousId"] == nil {
		return "userId or anonymousId is required"
	}
	if _, ok := c["messageId"].(string); !ok {
		return "messageId must be a string"
	}
	switch typ {
	case "track":
		if e, _ := c["event"].(string); e == "" {
			return "event is required"
		}
		if _, ok := c["properties"].(map[string]any); !ok && c["properties"] != nil {
			return "properties must be an object"
		}
	case "group":
		if c["groupId"] == nil {
			return "groupId is required"
		}
	}
	if _, ok := c["traits"].(map[string]any); !ok && c["traits"] != nil {
		return "traits must be an object"
	}
	return ""
}
