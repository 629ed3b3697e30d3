package apitest

import (
	"fmt"
	"net/http"
	"testing"
)

// MixpanelMaxUpdates is the most profile updates /engage takes per request.
const MixpanelMaxUpdates = 2000

// Mixpanel implements POST /engage (user profile updates) with ?verbose=1,
// the project token in each update. Like Mixpanel, it answers 200 with
// {"status":0,"error":...} for an update it cannot apply, and rejects the
// whole request then; it answers 401 to an unknown project token, as the
// ingestion endpoints do. Updates: $set, $set_once, $delete.
type Mixpanel struct {
	base
	token    string
	profiles map[string]map[string]any // distinct id → properties
}

// NewMixpanel starts a server for the project with token.
func NewMixpanel(t testing.TB, token string) *Mixpanel {
	m := &Mixpanel{token: token, profiles: map[string]map[string]any{}}
	m.start(t, m.handle)
	return m
}

// Profile returns a profile's properties, or nil.
func (m *Mixpanel) Profile(distinctID string) map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.profiles[distinctID]
}

// Count is how many profiles exist.
func (m *Mixpanel) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.profiles)
}

func mixpanelStatus(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"status": 0, "error": msg})
}

func (m *Mixpanel) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/engage" {
		mixpanelStatus(w, http.StatusNotFound, "not found")
		return
	}
	if r.URL.Query().Get("verbose") != "1" || r.Header.Get("Content-Type") != "application/json" {
		// Without verbose Mixpanel answers "0" or "1" only; the client
		// must ask for reasons.
		writeText(w, http.StatusOK, "0")
		return
	}
	body, _ := readBody(r, 10<<20)
	var updates []map[string]any
	if err := decodeStrict(body, &updates); err != nil {
		mixpanelStatus(w, http.StatusOK, "data, missing or empty")
		return
	}
	if len(updates) > MixpanelMaxUpdates {
		mixpanelStatus(w, http.StatusBadRequest, fmt.Sprintf("request contains %d updates, the maximum is %d", len(updates), MixpanelMaxUpdates))
		return
	}
	for _, u := range updates {
		if u["$token"] != m.token {
			mixpanelStatus(w, http.StatusUnauthorized, "Invalid project token")
			return
		}
		if msg := mixpanelUpdateError(u); msg != "" {
			mixpanelStatus(w, http.StatusOK, msg)
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range updates {
		m.apply(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": 1, "error": nil})
}

func mixpanelUpdateError(u map[string]any) string {
	if id, _ := u["$distinct_id"].(string); id == "" {
		return "$distinct_id, missing or empty"
	}
	ops := 0
	for _, op := range []string{"$set", "$set_once", "$delete"} {
		if v, ok := u[op]; ok {
			ops++
			if _, isObj := v.(map[string]any); op != "$delete" && !isObj {
				return op + " must be an object"
			}
		}
	}
	if ops != 1 {
		return "exactly one of $set, $set_once, $delete is required"
	}
	return ""
}

func (m *Mixpanel) apply(u map[string]any) {
	id := u["$distinct_id"].(string)
	if _, ok := u["$delete"]; ok {
		delete(m.profiles, id)
		return
	}
	p := m.profiles[id]
	if p == nil {
		p = map[string]any{}
		m.profiles[id] = p
	}
	if set, ok := u["$set"].(map[string]any); ok {
		for k, v := range set {
			p[k] = v
		}
	}
	if once, ok := u["$set_once"].(map[string]any); ok {
		for k, v := range once {
			if _, exists := p[k]; !exists {
				p[k] = v
			}
		}
	}
}
