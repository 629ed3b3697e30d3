package apitest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Salesforce limits: sObject collections take 200 records, a composite
// request 25 subrequests.
const (
	SalesforceMaxRecords     = 200
	SalesforceMaxSubrequests = 25
)

// Salesforce implements the REST API resources Ebb uses, for one API
// version:
//
//	POST  /services/oauth2/token  (client_credentials or refresh_token grant)
//	PATCH /services/data/{v}/composite/sobjects/{SObject}/{ExternalIdField}
//	POST  /services/data/{v}/composite  (DELETE /sobjects/{SObject}/{field}/{value} subrequests)
//
// Access tokens are Bearer; ExpireSessions makes every token issued so far
// answer 401 INVALID_SESSION_ID, as an expired session does. Like
// Salesforce with allOrNone false, a record that fails (here: an Email
// without '@') is reported in its slot of the results array and the others
// are saved.
type Salesforce struct {
	base
	version      string
	clientID     string
	clientSecret string
	refreshToken string

	issued   int
	valid    map[string]bool
	records  map[string]map[string]map[string]any // SObject → external id value → fields
	tokenReq int
}

// NewSalesforce starts a server for API version (such as "v62.0") that
// accepts the client credentials, and the refresh token when not empty.
func NewSalesforce(t testing.TB, version, clientID, clientSecret, refreshToken string) *Salesforce {
	s := &Salesforce{version: version, clientID: clientID, clientSecret: clientSecret, refreshToken: refreshToken,
		valid: map[string]bool{}, records: map[string]map[string]map[string]any{}}
	s.start(t, s.handle)
	return s
}

// ExpireSessions invalidates every access token issued so far.
func (s *Salesforce) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.valid = map[string]bool{}
}

// TokenRequests is how many tokens were asked for.
func (s *Salesforce) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReq
}

// Record returns the fields of the sObject record with that external id.
func (s *Salesforce) Record(sobject, extID string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records[sobject][extID]
}

// Count is how many records of an sObject exist.
func (s *Salesforce) Count(sobject string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records[sobject])
}

func sfErrors(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, []map[string]any{{"errorCode": code, "message": msg}})
}

func (s *Salesforce) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/services/oauth2/token" {
		s.token(w, r)
		return
	}
	s.mu.Lock()
	auth := s.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	s.mu.Unlock()
	if !auth {
		sfErrors(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		sfErrors(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
		return
	}
	prefix := "/services/data/" + s.version + "/composite"
	body, _ := readBody(r, 10<<20)
	switch {
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, prefix+"/sobjects/"):
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, prefix+"/sobjects/"), "/")
		if len(parts) != 2 {
			sfErrors(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
			return
		}
		s.upsert(w, parts[0], parts[1], body)
	case r.Method == http.MethodPost && r.URL.Path == prefix:
		s.composite(w, body)
	default:
		sfErrors(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
}

func (s *Salesforce) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "must use HTTP POST"})
		return
	}
	f := r.PostForm
	if f.Get("client_id") != s.clientID || f.Get("client_secret") != s.clientSecret {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client", "error_description": "invalid client credentials"})
		return
	}
	switch f.Get("grant_type") {
	case "client_credentials":
	case "refresh_token":
		if s.refreshToken == "" || f.Get("refresh_token") != s.refreshToken {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "expired access/refresh token"})
			return
		}
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "grant type not supported"})
		return
	}
	s.mu.Lock()
	s.issued++
	s.tokenReq++
	tok := fmt.Sprintf("00Dxx!session-%d", s.issued)
	s.valid[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"access_token": tok, "instance_url": s.URL(), "token_type": "Bearer"})
}

func (s *Salesforce) upsert(w http.ResponseWriter, sobject, extField string, body []byte) {
	var req struct {
		AllOrNone *bool            `json:"allOrNone"`
		Records   []map[string]any `json:"records"`
	}
	if err := decodeStrict(body, &req); err != nil || req.Records == nil {
		sfErrors(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "The request body is not valid JSON with a records array")
		return
	}
	if len(req.Records) > SalesforceMaxRecords {
		sfErrors(w, http.StatusBadRequest, "EXCEEDED_ID_LIMIT", fmt.Sprintf("record limit exceeded: %d > %d", len(req.Records), SalesforceMaxRecords))
		return
	}
	if req.AllOrNone == nil || *req.AllOrNone {
		// This server implements the partial-success behaviour only.
		sfErrors(w, http.StatusBadRequest, "INVALID_FIELD", "this test server requires allOrNone: false")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records[sobject] == nil {
		s.records[sobject] = map[string]map[string]any{}
	}
	results := make([]map[string]any, 0, len(req.Records))
	for _, rec := range req.Records {
		results = append(results, s.upsertOne(sobject, extField, rec))
	}
	writeJSON(w, http.StatusOK, results)
}

func (s *Salesforce) upsertOne(sobject, extField string, rec map[string]any) map[string]any {
	fail := func(code, msg string, fields ...string) map[string]any {
		return map[string]any{"success": false, "errors": []map[string]any{{"statusCode": code, "message": msg, "fields": append([]string{}, fields...)}}}
	}
	attrs, _ := rec["attributes"].(map[string]any)
	if attrs == nil || attrs["type"] != sobject {
		return fail("INVALID_TYPE", "attributes.type must be "+sobject)
	}
	ext, _ := rec[extField].(string)
	if ext == "" {
		return fail("MISSING_ARGUMENT", extField+" not specified", extField)
	}
	if email, ok := rec["Email"].(string); ok && !strings.Contains(email, "@") {
		return fail("INVALID_EMAIL_ADDRESS", "Email: invalid email address: "+email, "Email")
	}
	existing, found := s.records[sobject][ext]
	if !found {
		existing = map[string]any{"Id": fmt.Sprintf("001%015d", len(s.records[sobject])+1)}
		s.records[sobject][ext] = existing
	}
	for k, v := range rec {
		if k != "attributes" {
			existing[k] = v
		}
	}
	return map[string]any{"id": existing["Id"], "success": true, "errors": []any{}, "created": !found}
}

func (s *Salesforce) composite(w http.ResponseWriter, body []byte) {
	var req struct {
		CompositeRequest []struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			ReferenceID string `json:"referenceId"`
		} `json:"compositeRequest"`
	}
	if err := decodeStrict(body, &req); err != nil || req.CompositeRequest == nil {
		sfErrors(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "The request body is not valid JSON with a compositeRequest array")
		return
	}
	if len(req.CompositeRequest) > SalesforceMaxSubrequests {
		sfErrors(w, http.StatusBadRequest, "INVALID_BATCH_REQUEST", fmt.Sprintf("composite requests take at most %d subrequests", SalesforceMaxSubrequests))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(req.CompositeRequest))
	prefix := "/services/data/" + s.version + "/sobjects/"
	for _, sub := range req.CompositeRequest {
		parts := strings.Split(strings.TrimPrefix(sub.URL, prefix), "/")
		resp := map[string]any{"referenceId": sub.ReferenceID, "httpHeaders": map[string]any{}}
		if sub.Method != http.MethodDelete || !strings.HasPrefix(sub.URL, prefix) || len(parts) != 3 || sub.ReferenceID == "" {
			resp["httpStatusCode"] = http.StatusBadRequest
			resp["body"] = []map[string]any{{"errorCode": "INVALID_URL", "message": "this test server takes DELETE by external id only"}}
			out = append(out, resp)
			continue
		}
		value, _ := url.PathUnescape(parts[2])
		if _, ok := s.records[parts[0]][value]; !ok {
			resp["httpStatusCode"] = http.StatusNotFound
			resp["body"] = []map[string]any{{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}}
		} else {
			delete(s.records[parts[0]], value)
			resp["httpStatusCode"] = http.StatusNoContent
			resp["body"] = nil
		}
		out = append(out, resp)
	}
	writeJSON(w, http.StatusOK, map[string]any{"compositeResponse": out})
}
