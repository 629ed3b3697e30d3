// Package salesforce writes records to a Salesforce sObject, matched on an
// external id field:
//
//	upsert, insert, update → PATCH /services/data/{v}/composite/sobjects/{SObject}/{ExternalIdField}
//	                         {"allOrNone":false,"records":[{"attributes":{"type":...}, ...}]}
//	delete                 → POST /services/data/{v}/composite, subrequests
//	                         DELETE /services/data/{v}/sobjects/{SObject}/{ExternalIdField}/{value}
//
// Inserts and updates are upserts: Salesforce takes no idempotency key, so
// an idempotent call is what keeps a batch sent again after a crash from
// failing on, or duplicating, what its first attempt wrote.
//
// Deletes: the sObject collections delete takes Salesforce record ids
// only, which Ebb does not have; resolving them would take a SOQL query
// whose IN list must fit in a URL. The documented "sObject rows by external
// ID" resource deletes by external id directly, and the composite resource
// carries 25 such deletes in one request that counts as one API call; a
// record already gone (404 NOT_FOUND) is deleted as far as Ebb is concerned.
//
// Auth is OAuth 2.0: the client credentials grant, or the refresh token
// grant when a refresh_token is configured, at {login_url}/services/oauth2/token.
// A request answered 401 INVALID_SESSION_ID gets a new token and is sent
// once more.
package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/rest"
	"github.com/ebb-etl/ebb/libs/record"
)

// The API's limits per request.
const (
	maxRecords     = 200
	maxSubrequests = 25
)

// Spec declares the config.
var Spec = destination.Spec{
	Type: "salesforce",
	Fields: []destination.Field{
		{Name: "instance_url", Type: destination.TypeURL, Required: true, Doc: "the org's My Domain URL, such as https://acme.my.salesforce.com"},
		{Name: "login_url", Type: destination.TypeURL, Doc: "where tokens are issued (default: instance_url; https://login.salesforce.com for the refresh token grant)"},
		{Name: "client_id", Type: destination.TypeString, Required: true, Doc: "the connected app's consumer key"},
		{Name: "client_secret", Type: destination.TypeString, Required: true, Secret: true, Doc: "the connected app's consumer secret"},
		{Name: "refresh_token", Type: destination.TypeString, Secret: true, Doc: "use the refresh token grant instead of client credentials"},
		{Name: "api_version", Type: destination.TypeString, Default: "v62.0", Doc: "the REST API version"},
		{Name: "sobject", Type: destination.TypeString, Required: true, Doc: "the sObject, such as Contact or Account__c"},
		{Name: "external_id_field", Type: destination.TypeString, Required: true, Doc: "the sObject's external id field records are matched on"},
		{Name: "id_field", Type: destination.TypeString, Doc: "the record field holding the external id (default: the key's only column)"},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete},
}

// Destination is one sObject of an org. It is safe for concurrent use.
type Destination struct {
	tokenURL string
	grant    url.Values
	version  string
	sobject  string
	extField string
	idField  string
	client   *rest.Client

	mu       sync.Mutex
	token    string
	instance string
}

// Open validates cfg; the first token is fetched by the first Write.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	v, err := Spec.Parse(cfg)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(v.String("api_version"), "v") {
		return nil, fmt.Errorf("salesforce config.api_version: %q is not of the form v62.0", v.String("api_version"))
	}
	login := v.String("login_url")
	if login == "" {
		login = v.String("instance_url")
	}
	grant := url.Values{"grant_type": {"client_credentials"}, "client_id": {v.String("client_id")}, "client_secret": {v.String("client_secret")}}
	if rt := v.String("refresh_token"); rt != "" {
		grant.Set("grant_type", "refresh_token")
		grant.Set("refresh_token", rt)
	}
	return &Destination{
		tokenURL: login + "/services/oauth2/token",
		grant:    grant,
		version:  v.String("api_version"),
		sobject:  v.String("sobject"),
		extField: v.String("external_id_field"),
		idField:  v.String("id_field"),
		instance: v.String("instance_url"),
		client:   rest.New("salesforce", opts, Spec.Secrets(v)...),
	}, nil
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.Close()
	return nil
}

// Write upserts, 200 records per request, then deletes, 25 per request.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	var ups, dels []int
	ids := make([]string, len(b.Records))
	for i, r := range b.Records {
		id, err := destination.ID(r, d.idField)
		if err != nil {
			errs[i] = fmt.Errorf("salesforce %s: %w", d.extField, err)
			continue
		}
		ids[i] = id
		if r.Op == record.OpDelete {
			dels = append(dels, i)
		} else {
			ups = append(ups, i)
		}
	}
	for start := 0; start < len(ups); start += maxRecords {
		if err := d.upsert(ctx, b, ids, ups[start:min(start+maxRecords, len(ups))], errs); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(dels); start += maxSubrequests {
		if err := d.delete(ctx, ids, dels[start:min(start+maxSubrequests, len(dels))], errs); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

func (d *Destination) upsert(ctx context.Context, b destination.Batch, ids []string, pos []int, errs []error) error {
	records := make([]map[string]any, len(pos))
	for j, i := range pos {
		rec := make(map[string]any, len(b.Records[i].Data)+2)
		for k, v := range b.Records[i].Data {
			rec[k] = v
		}
		rec["attributes"] = map[string]string{"type": d.sobject}
		rec[d.extField] = ids[i]
		records[j] = rec
	}
	path := "/services/data/" + d.version + "/composite/sobjects/" + url.PathEscape(d.sobject) + "/" + url.PathEscape(d.extField)
	resp, err := d.call(ctx, http.MethodPatch, path, map[string]any{"allOrNone": false, "records": records})
	if err != nil {
		return err
	}
	var results []struct {
		Success bool `json:"success"`
		Errors  []struct {
			StatusCode string   `json:"statusCode"`
			Message    string   `json:"message"`
			Fields     []string `json:"fields"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(resp.Body, &results); err != nil || len(results) != len(pos) {
		// Results are matched to records by position: without one each,
		// no failure can be told apart.
		return destination.Permanent(fmt.Errorf("salesforce: %d results for %d records: %s", len(results), len(pos), d.client.Snippet(resp.Body)))
	}
	for j, res := range results {
		if res.Success {
			continue
		}
		var msgs []string
		for _, e := range res.Errors {
			msgs = append(msgs, e.StatusCode+": "+e.Message)
		}
		errs[pos[j]] = d.client.Reason(strings.Join(msgs, "; "))
	}
	return nil
}

func (d *Destination) delete(ctx context.Context, ids []string, pos []int, errs []error) error {
	type sub struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		ReferenceID string `json:"referenceId"`
	}
	subs := make([]sub, len(pos))
	base := "/services/data/" + d.version + "/sobjects/" + url.PathEscape(d.sobject) + "/" + url.PathEscape(d.extField) + "/"
	for j, i := range pos {
		subs[j] = sub{http.MethodDelete, base + url.PathEscape(ids[i]), fmt.Sprintf("r%d", j)}
	}
	resp, err := d.call(ctx, http.MethodPost, "/services/data/"+d.version+"/composite",
		map[string]any{"allOrNone": false, "compositeRequest": subs})
	if err != nil {
		return err
	}
	var answer struct {
		CompositeResponse []struct {
			HTTPStatusCode int             `json:"httpStatusCode"`
			ReferenceID    string          `json:"referenceId"`
			Body           json.RawMessage `json:"body"`
		} `json:"compositeResponse"`
	}
	if err := json.Unmarshal(resp.Body, &answer); err != nil || len(answer.CompositeResponse) != len(pos) {
		return destination.Permanent(fmt.Errorf("salesforce: %d composite results for %d deletes: %s", len(answer.CompositeResponse), len(pos), d.client.Snippet(resp.Body)))
	}
	for j, r := range answer.CompositeResponse {
		if r.HTTPStatusCode/100 == 2 || r.HTTPStatusCode == http.StatusNotFound {
			continue
		}
		errs[pos[j]] = d.client.Reason(fmt.Sprintf("HTTP %d: %s", r.HTTPStatusCode, apiErrors(r.Body)))
	}
	return nil
}

// apiErrors reads Salesforce's [{"errorCode","message"}] error bodies.
func apiErrors(body []byte) string {
	var list []struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(body, &list) != nil || len(list) == 0 {
		return string(body)
	}
	msgs := make([]string, len(list))
	for i, e := range list {
		msgs[i] = e.ErrorCode + ": " + e.Message
	}
	return strings.Join(msgs, "; ")
}

// call sends a JSON request with the current token, and once more with a
// new one when the session expired.
func (d *Destination) call(ctx context.Context, method, path string, v any) (*rest.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, destination.Permanent(fmt.Errorf("salesforce: encoding the request: %w", err))
	}
	for attempt := 0; ; attempt++ {
		token, instance, err := d.session(ctx, "")
		if err != nil {
			return nil, err
		}
		req, err := d.client.Request(ctx, method, instance+path, "application/json", body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := d.client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.Status/100 == 2 {
			return resp, nil
		}
		if resp.Status == http.StatusUnauthorized && attempt == 0 && strings.Contains(string(resp.Body), "INVALID_SESSION_ID") {
			if _, _, err := d.session(ctx, token); err != nil {
				return nil, err
			}
			continue
		}
		return nil, d.client.Reject(resp)
	}
}

// session returns the access token and instance URL, fetching a token when
// there is none or when the caller's (stale) is still the current one; a
// caller whose stale token another request already replaced gets the new
// one without a second fetch.
func (d *Destination) session(ctx context.Context, stale string) (string, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.token != "" && d.token != stale {
		return d.token, d.instance, nil
	}
	req, err := d.client.Request(ctx, http.MethodPost, d.tokenURL, "application/x-www-form-urlencoded", []byte(d.grant.Encode()))
	if err != nil {
		return "", "", err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return "", "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
	}
	if resp.Status/100 != 2 {
		// invalid_client, invalid_grant: the credentials are wrong.
		return "", "", d.client.AuthRejected(resp)
	}
	if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.AccessToken == "" {
		return "", "", destination.Permanent(errors.New("salesforce auth: the token endpoint answered without an access_token"))
	}
	d.token = tok.AccessToken
	d.client.Redact(tok.AccessToken)
	if tok.InstanceURL != "" {
		d.instance = strings.TrimRight(tok.InstanceURL, "/")
	}
	return d.token, d.instance, nil
}
