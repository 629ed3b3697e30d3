package apitest

import (
	"fmt"
	"net/http"
	"testing"
)

// AmplitudeMaxIdentifications is the most identifications this server
// takes in one request, per the HTTP V2 guidance the Identify API follows.
const AmplitudeMaxIdentifications = 2000

// Amplitude implements POST /identify: a form (x-www-form-urlencoded) with
// api_key and identification, a JSON array of {"user_id", "user_properties"}
// whose user_properties are operations ($set, $setOnce, $unset). Like
// Amplitude, it answers 200 "success", or 400 with a reason for the whole
// request (a bad api_key included) and applies nothing then.
type Amplitude struct {
	base
	apiKey string
	users  map[string]map[string]any
}

// NewAmplitude starts a server for the project with apiKey.
func NewAmplitude(t testing.TB, apiKey string) *Amplitude {
	a := &Amplitude{apiKey: apiKey, users: map[string]map[string]any{}}
	a.start(t, a.handle)
	return a
}

// User returns a user's properties, or nil.
func (a *Amplitude) User(id string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.users[id]
}

// Count is how many users exist.
func (a *Amplitude) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.users)
}

func (a *Amplitude) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/identify" {
		writeText(w, http.StatusNotFound, "not found")
		return
	}
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		writeText(w, http.StatusBadRequest, "missing api_key")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeText(w, http.StatusBadRequest, "invalid request body")
		return
	}
	if key := r.PostForm.Get("api_key"); key == "" {
		writeText(w, http.StatusBadRequest, "missing api_key")
		return
	} else if key != a.apiKey {
		writeText(w, http.StatusBadRequest, "invalid api_key")
		return
	}
	var ids []map[string]any
	if err := decodeStrict([]byte(r.PostForm.Get("identification")), &ids); err != nil {
		writeText(w, http.StatusBadRequest, "invalid identification: not a JSON array")
		return
	}
	if len(ids) > AmplitudeMaxIdentifications {
		writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("too many identifications: %d > %d", len(ids), AmplitudeMaxIdentifications))
		return
	}
	for i, id := range ids {
		if msg := amplitudeError(id); msg != "" {
			writeText(w, http.StatusBadRequest, fmt.Sprintf("identification %d: %s", i, msg))
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.apply(id)
	}
	writeText(w, http.StatusOK, "success")
}

func amplitudeError(id map[string]any) string {
	if u, _ := id["user_id"].(string); u == "" {
		return "user_id or device_id is required"
	}
	props, ok := id["user_properties"].(map[string]any)
	if !ok {
		return "user_properties must be an object"
	}
	for op, v := range props {
		switch op {
		case "$set", "$setOnce", "$unset":
			if _, ok := v.(map[string]any); !ok {
				return op + " must be an object"
			}
		default:
			return "cannot mix user property operations with top-level properties: " + op
		}
	}
	return ""
}

func (a *Amplitude) apply(id map[string]any) {
	uid := id["user_id"].(string)
	u := a.users[uid]
	if u == nil {
		u = map[string]any{}
		a.users[uid] = u
	}
	props := id["user_properties"].(map[string]any)
	set, _ := props["$set"].(map[string]any)
	for k, v := range set {
		u[k] = v
	}
	if once, ok := props["$setOnce"].(map[string]any); ok {
		for k, v := range once {
			if _, exists := u[k]; !exists {
				u[k] = v
			}
		}
	}
	if unset, ok := props["$unset"].(map[string]any); ok {
		for k := range unset {
			delete(u, k)
		}
	}
}
