package apitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// HubSpotMaxInputs is the most inputs a CRM v3 batch endpoint takes.
const HubSpotMaxInputs = 100

// HubSpot implements the CRM v3 object batch endpoints Ebb uses:
//
//	POST /crm/v3/objects/{object}/batch/upsert   {"inputs":[{"idProperty","id","properties"}]}
//	POST /crm/v3/objects/{object}/batch/read     {"idProperty","inputs":[{"id"}],"properties":[...]}
//	POST /crm/v3/objects/{object}/batch/archive  {"inputs":[{"id"}]}  → 204
//
// with a private app token as Bearer. Like HubSpot, an input whose email is
// not an email address fails alone: the answer is 207 Multi-Status with an
// error naming the input's id in context.ids, and the other inputs are
// written. Property values must be flat (string, number, bool or null).
type HubSpot struct {
	base
	token   string
	nextID  int
	objects map[string]map[string]map[string]string // object type → hs_object_id → properties
}

// NewHubSpot starts a server that accepts token.
func NewHubSpot(t testing.TB, token string) *HubSpot {
	h := &HubSpot{token: token, objects: map[string]map[string]map[string]string{}}
	h.start(t, h.handle)
	return h
}

// Object returns the properties of the object of type objType whose
// property prop is value, or nil.
func (h *HubSpot) Object(objType, prop, value string) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, props := h.find(objType, prop, value)
	return props
}

// Count is how many objects of a type exist.
func (h *HubSpot) Count(objType string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.objects[objType])
}

func (h *HubSpot) find(objType, prop, value string) (string, map[string]string) {
	for id, props := range h.objects[objType] {
		if (prop == "hs_object_id" && id == value) || props[prop] == value {
			return id, props
		}
	}
	return "", nil
}

func hubspotError(w http.ResponseWriter, status int, category, msg string) {
	writeJSON(w, status, map[string]any{"status": "error", "category": category, "message": msg, "correlationId": "c0ffee"})
}

func (h *HubSpot) handle(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+h.token {
		hubspotError(w, http.StatusUnauthorized, "INVALID_AUTHENTICATION",
			"Authentication credentials not found. This API supports OAuth 2.0 authentication.")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/crm/v3/objects/")
	parts := strings.Split(rest, "/")
	if !ok || r.Method != http.MethodPost || len(parts) != 3 || parts[1] != "batch" {
		hubspotError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found")
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		hubspotError(w, http.StatusUnsupportedMediaType, "VALIDATION_ERROR", "Content-Type must be application/json")
		return
	}
	body, _ := readBody(r, 10<<20)
	var req struct {
		IDProperty string `json:"idProperty"`
		Inputs     []struct {
			ID         *string                    `json:"id"`
			IDProperty string                     `json:"idProperty"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"inputs"`
	}
	if err := decodeStrict(body, &req); err != nil || req.Inputs == nil {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1")
		return
	}
	if len(req.Inputs) > HubSpotMaxInputs {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR",
			fmt.Sprintf("Batch input limit exceeded: %d > %d", len(req.Inputs), HubSpotMaxInputs))
		return
	}
	for _, in := range req.Inputs {
		if in.ID == nil || *in.ID == "" {
			hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Some required fields were not set: [id]")
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	objType := parts[0]
	if h.objects[objType] == nil {
		h.objects[objType] = map[string]map[string]string{}
	}
	switch parts[2] {
	case "upsert":
		var results []any
		var errs []map[string]any
		for _, in := range req.Inputs {
			if in.IDProperty == "" || in.Properties == nil {
				hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Some required fields were not set: [idProperty, properties]")
				return
			}
			props := map[string]string{in.IDProperty: *in.ID}
			for k, raw := range in.Properties {
				v, ok := flatValue(raw)
				if !ok {
					hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Invalid input JSON: property %s is not a flat value", k))
					return
				}
				props[k] = v
			}
			if email, ok := props["email"]; ok && email != "" && !strings.Contains(email, "@") {
				errs = append(errs, map[string]any{"status": "error", "category": "VALIDATION_ERROR",
					"message": fmt.Sprintf("Property values were not valid: Email address %s is invalid", email),
					"context": map[string][]string{"ids": {*in.ID}}})
				continue
			}
			id, existing := h.find(objType, in.IDProperty, *in.ID)
			isNew := existing == nil
			if isNew {
				h.nextID++
				id = strconv.Itoa(h.nextID)
				existing = map[string]string{}
				h.objects[objType][id] = existing
			}
			for k, v := range props {
				existing[k] = v
			}
			results = append(results, map[string]any{"id": id, "properties": existing, "new": isNew})
		}
		h.answer(w, results, errs)
	case "read":
		var results []any
		var errs []map[string]any
		for _, in := range req.Inputs {
			id, props := h.find(objType, req.IDProperty, *in.ID)
			if props == nil {
				errs = append(errs, map[string]any{"status": "error", "category": "OBJECT_NOT_FOUND",
					"message": "Could not get some objects, they may be deleted or not exist. Check that ids are valid.",
					"context": map[string][]string{"ids": {*in.ID}}})
				continue
			}
			results = append(results, map[string]any{"id": id, "properties": props})
		}
		h.answer(w, results, errs)
	case "archive":
		for _, in := range req.Inputs {
			delete(h.objects[objType], *in.ID)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		hubspotError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found")
	}
}

func (h *HubSpot) answer(w http.ResponseWriter, results []any, errs []map[string]any) {
	out := map[string]any{"status": "COMPLETE", "results": append([]any{}, results...)}
	if len(errs) == 0 {
		writeJSON(w, http.StatusOK, out)
		return
	}
	out["errors"] = errs
	out["numErrors"] = len(errs)
	writeJSON(w, http.StatusMultiStatus, out)
}

func flatValue(raw json.RawMessage) (string, bool) {
	var v any
	if err := decodeStrict(raw, &v); err != nil {
		return "", false
	}
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}
