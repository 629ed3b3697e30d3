// Package braze writes records as Braze user attributes:
//
//	upsert, insert → POST /users/track {"attributes":[{"external_id":..., ...data}]}
//	update         → the same, with "_update_existing_only": true
//	delete         → POST /users/delete {"external_ids":[...]}
//
// with a REST API key as Bearer. Braze reports the attributes objects it
// could not process in errors[] by index; those records fail alone. Braze
// takes no idempotency key; setting attributes and deleting users are
// idempotent, so a batch sent again changes nothing.
package braze

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/rest"
	"github.com/ebb-etl/ebb/libs/record"
)

// The API's limits per request.
const (
	maxAttributes = 75
	maxDeletes    = 50
)

// Spec declares the config.
var Spec = destination.Spec{
	Type: "braze",
	Fields: []destination.Field{
		{Name: "endpoint", Type: destination.TypeURL, Required: true, Doc: "the workspace's REST endpoint, such as https://rest.iad-01.braze.com"},
		{Name: "api_key", Type: destination.TypeString, Required: true, Secret: true, Doc: "a REST API key with users.track (and users.delete for deletes)"},
		{Name: "external_id_field", Type: destination.TypeString, Doc: "the field holding the user's external_id (default: the key's only column)"},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete},
}

// Destination is a Braze workspace. It is safe for concurrent use.
type Destination struct {
	endpoint string
	key      string
	idField  string
	client   *rest.Client
}

// Open validates cfg.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	v, err := Spec.Parse(cfg)
	if err != nil {
		return nil, err
	}
	return &Destination{
		endpoint: v.String("endpoint"),
		key:      v.String("api_key"),
		idField:  v.String("external_id_field"),
		client:   rest.New("braze", opts, Spec.Secrets(v)...),
	}, nil
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.Close()
	return nil
}

// Write sends attributes, 75 per request, then deletes, 50 per request.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	var attrs []map[string]any
	var attrPos []int
	var deletes []string
	var deletePos []int
	for i, r := range b.Records {
		id, err := destination.ID(r, d.idField)
		if err != nil {
			errs[i] = fmt.Errorf("braze external_id: %w", err)
			continue
		}
		if r.Op == record.OpDelete {
			deletes, deletePos = append(deletes, id), append(deletePos, i)
			continue
		}
		attrs, attrPos = append(attrs, attributes(r, id)), append(attrPos, i)
	}
	for start := 0; start < len(attrs); start += maxAttributes {
		end := min(start+maxAttributes, len(attrs))
		if err := d.track(ctx, attrs[start:end], attrPos[start:end], errs); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(deletes); start += maxDeletes {
		end := min(start+maxDeletes, len(deletes))
		body := map[string]any{"external_ids": deletes[start:end]}
		if _, err := d.post(ctx, "/users/delete", body); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

func attributes(r record.Record, id string) map[string]any {
	a := make(map[string]any, len(r.Data)+2)
	for k, v := range r.Data {
		a[k] = v
	}
	a["external_id"] = id
	if r.Op == record.OpUpdate {
		// An update must not create a user the model says existed.
		a["_update_existing_only"] = true
	}
	return a
}

func (d *Destination) track(ctx context.Context, attrs []map[string]any, pos []int, errs []error) error {
	resp, err := d.post(ctx, "/users/track", map[string]any{"attributes": attrs})
	if resp == nil {
		return err
	}
	// A 400 that names the objects at fault fails those alone; one that
	// names none fails the batch (err, permanent).
	named, perr := d.objectErrors(resp, pos, errs)
	if perr != nil {
		return perr
	}
	if err != nil && named == 0 {
		return err
	}
	return nil
}

// objectErrors maps errors[] entries to records and returns how many it
// mapped.
func (d *Destination) objectErrors(resp *rest.Response, pos []int, errs []error) (int, error) {
	var answer struct {
		Errors []struct {
			Type       string `json:"type"`
			InputArray string `json:"input_array"`
			Index      *int   `json:"index"`
		} `json:"errors"`
	}
	if json.Unmarshal(resp.Body, &answer) != nil {
		return 0, nil
	}
	for _, e := range answer.Errors {
		if e.InputArray != "attributes" || e.Index == nil || *e.Index < 0 || *e.Index >= len(pos) {
			// An error naming no record we sent: Braze changed, or
			// the answer is garbage; never let a failure go unreported.
			return 0, destination.Permanent(fmt.Errorf("braze: an error for no attributes object we sent: %s", d.client.Snippet(resp.Body)))
		}
		errs[pos[*e.Index]] = d.client.Reason(e.Type)
	}
	return len(answer.Errors), nil
}

// post sends a request. It returns the answer of a 2xx, and of a 400 with
// its permanent error, so the caller can read per-object errors from it.
func (d *Destination) post(ctx context.Context, path string, v any) (*rest.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, destination.Permanent(fmt.Errorf("braze: encoding the request: %w", err))
	}
	req, err := d.client.Request(ctx, http.MethodPost, d.endpoint+path, "application/json", body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.key)
	resp, err := d.client.Do(req)
	switch {
	case err != nil:
		return nil, err
	case resp.Status/100 == 2:
		return resp, nil
	case resp.Status == http.StatusBadRequest:
		return resp, d.client.Reject(resp)
	}
	return nil, d.client.Reject(resp)
}
