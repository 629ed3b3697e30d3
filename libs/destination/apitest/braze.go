package apitest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Braze limits: /users/track takes 75 attributes objects, /users/delete 50
// external ids.
const (
	BrazeMaxAttributes = 75
	BrazeMaxDeletes    = 50
)

// Braze implements POST /users/track (attributes) and POST /users/delete
// with a REST API key as Bearer. Like Braze, an attributes object that
// cannot be processed (no external_id, an invalid email) is reported in
// errors[] by its index, with the others processed: 201 when some were,
// 400 when none were. _update_existing_only: true never creates a user.
type Braze struct {
	base
	key   string
	users map[string]map[string]any // external_id → attributes
}

// NewBraze starts a server that accepts key.
func NewBraze(t testing.TB, key string) *Braze {
	b := &Braze{key: key, users: map[string]map[string]any{}}
	b.start(t, b.handle)
	return b
}

// User returns a user's attributes, or nil.
func (b *Braze) User(externalID string) map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.users[externalID]
}

// Count is how many users exist.
func (b *Braze) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.users)
}

func (b *Braze) handle(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+b.key {
		// Braze echoes the key it was given: the client must redact it.
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Invalid API key: " + key})
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid request: expected a JSON POST"})
		return
	}
	body, _ := readBody(r, 4<<20)
	switch r.URL.Path {
	case "/users/track":
		b.track(w, body)
	case "/users/delete":
		b.delete(w, body)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "not found"})
	}
}

func (b *Braze) track(w http.ResponseWriter, body []byte) {
	var req struct {
		Attributes []map[string]any `json:"attributes"`
	}
	if err := decodeStrict(body, &req); err != nil || req.Attributes == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."})
		return
	}
	if len(req.Attributes) > BrazeMaxAttributes {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": fmt.Sprintf("Too many attributes objects: %d, the maximum is %d", len(req.Attributes), BrazeMaxAttributes)})
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []map[string]any
	processed := 0
	for i, a := range req.Attributes {
		reason := ""
		id, _ := a["external_id"].(string)
		if email, ok := a["email"].(string); ok && !strings.Contains(email, "@") {
			reason = "Invalid 'email' field"
		}
		if id == "" {
			reason = "Either an 'external_id' or a 'braze_id' or a 'user_alias' is required"
		}
		if reason != "" {
			errs = append(errs, map[string]any{"type": reason, "input_array": "attributes", "index": i})
			continue
		}
		processed++
		user := b.users[id]
		if user == nil {
			if only, _ := a["_update_existing_only"].(bool); only {
				continue
			}
			user = map[string]any{}
			b.users[id] = user
		}
		for k, v := range a {
			if k != "external_id" && k != "_update_existing_only" {
				user[k] = v
			}
		}
	}
	out := map[string]any{"message": "success", "attributes_processed": processed}
	if len(errs) > 0 {
		out["errors"] = errs
	}
	status := http.StatusCreated
	if processed == 0 && len(errs) > 0 {
		status, out["message"] = http.StatusBadRequest, "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
	}
	writeJSON(w, status, out)
}

func (b *Braze) delete(w http.ResponseWriter, body []byte) {
	var req struct {
		ExternalIDs []string `json:"external_ids"`
	}
	if err := decodeStrict(body, &req); err != nil || req.ExternalIDs == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "'external_ids', 'user_aliases' or 'braze_ids' must be provided"})
		return
	}
	if len(req.ExternalIDs) > BrazeMaxDeletes {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": fmt.Sprintf("Too many users to delete: %d, the maximum is %d", len(req.ExternalIDs), BrazeMaxDeletes)})
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	deleted := 0
	for _, id := range req.ExternalIDs {
		if _, ok := b.users[id]; ok {
			delete(b.users, id)
			deleted++
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"message": "success", "deleted": deleted})
}
