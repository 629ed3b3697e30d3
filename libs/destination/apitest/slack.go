package apitest

import (
	"net/http"
	"testing"
)

// Slack implements an incoming webhook: POST <webhook URL> {"text": ...}.
// Like Slack it answers 200 "ok", 400 "invalid_payload" or "no_text" for a
// bad body, and 404 "no_service" for a URL it does not know (a revoked or
// mistyped webhook).
type Slack struct {
	base
	path     string
	messages []string
}

// NewSlack starts a server whose one webhook is at path, such as
// "/services/T000/B000/XXXX".
func NewSlack(t testing.TB, path string) *Slack {
	s := &Slack{path: path}
	s.start(t, s.handle)
	return s
}

// WebhookURL is the webhook's full URL.
func (s *Slack) WebhookURL() string { return s.URL() + s.path }

// Messages returns the texts posted, in order.
func (s *Slack) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.messages...)
}

func (s *Slack) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		writeText(w, http.StatusNotFound, "no_service")
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		writeText(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	body, _ := readBody(r, 1<<20)
	var msg map[string]any
	if err := decodeStrict(body, &msg); err != nil {
		writeText(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	text, _ := msg["text"].(string)
	if text == "" && msg["blocks"] == nil {
		writeText(w, http.StatusBadRequest, "no_text")
		return
	}
	s.mu.Lock()
	s.messages = append(s.messages, text)
	s.mu.Unlock()
	writeText(w, http.StatusOK, "ok")
}
