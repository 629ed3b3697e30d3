// Package mixpanel writes records as Mixpanel user profiles through the
// Engage API:
//
//	POST <api_host>/engage?verbose=1
//	[{"$token":..., "$distinct_id":..., "$set":{...}}, ...]
//
// upsert and update are $set, insert is $set_once (it never overwrites a
// property the profile already has), delete is $delete. The project token
// in each update is the API's authentication. Mixpanel answers 200 even
// when it rejects updates; verbose=1 makes it say so, as
// {"status":0,"error":"..."}, without naming the update at fault: the batch
// fails as a whole and the delivery splits it to find the record. /engage
// takes no idempotency key or $insert_id; every operation used here is
// idempotent, so a batch sent again changes nothing.
package mixpanel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/rest"
	"github.com/ebb-etl/ebb/libs/record"
)

// maxUpdates is the API's limit per request.
const maxUpdates = 2000

// Spec declares the config.
var Spec = destination.Spec{
	Type: "mixpanel",
	Fields: []destination.Field{
		{Name: "project_token", Type: destination.TypeString, Required: true, Secret: true, Doc: "the project's token"},
		{Name: "api_host", Type: destination.TypeURL, Default: "https://api.mixpanel.com", Doc: "https://api-eu.mixpanel.com or https://api-in.mixpanel.com for EU or India residency"},
		{Name: "distinct_id_field", Type: destination.TypeString, Doc: "the field holding the profile's $distinct_id (default: the key's only column)"},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete},
}

// Destination is a Mixpanel project. It is safe for concurrent use.
type Destination struct {
	url     string
	token   string
	idField string
	client  *rest.Client
}

// Open validates cfg.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	v, err := Spec.Parse(cfg)
	if err != nil {
		return nil, err
	}
	return &Destination{
		url:     v.String("api_host") + "/engage?verbose=1",
		token:   v.String("project_token"),
		idField: v.String("distinct_id_field"),
		client:  rest.New("mixpanel", opts, Spec.Secrets(v)...),
	}, nil
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.Close()
	return nil
}

// Write sends the updates, 2000 per request.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	var updates []map[string]any
	for i, r := range b.Records {
		u, err := d.update(r)
		if err != nil {
			errs[i] = err
			continue
		}
		updates = append(updates, u)
	}
	for start := 0; start < len(updates); start += maxUpdates {
		if err := d.send(ctx, updates[start:min(start+maxUpdates, len(updates))]); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

func (d *Destination) update(r record.Record) (map[string]any, error) {
	id, err := destination.ID(r, d.idField)
	if err != nil {
		return nil, fmt.Errorf("mixpanel $distinct_id: %w", err)
	}
	u := map[string]any{"$token": d.token, "$distinct_id": id}
	props := r.Data
	if props == nil {
		props = map[string]any{}
	}
	switch r.Op {
	case record.OpUpsert, record.OpUpdate:
		u["$set"] = props
	case record.OpInsert:
		u["$set_once"] = props
	case record.OpDelete:
		u["$delete"] = ""
	default:
		return nil, fmt.Errorf("mixpanel: unknown op %q", r.Op)
	}
	return u, nil
}

func (d *Destination) send(ctx context.Context, updates []map[string]any) error {
	body, err := json.Marshal(updates)
	if err != nil {
		return destination.Permanent(fmt.Errorf("mixpanel: encoding the updates: %w", err))
	}
	req, err := d.client.Request(ctx, http.MethodPost, d.url, "application/json", body)
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	if resp.Status/100 != 2 {
		return d.client.Reject(resp)
	}
	var answer struct {
		Status *int    `json:"status"`
		Error  *string `json:"error"`
	}
	if err := json.Unmarshal(resp.Body, &answer); err != nil || answer.Status == nil {
		return destination.Permanent(fmt.Errorf("mixpanel: unexpected answer: %s", d.client.Snippet(resp.Body)))
	}
	if *answer.Status != 1 {
		reason := "rejected without a reason"
		if answer.Error != nil {
			reason = *answer.Error
		}
		return destination.Permanent(errors.New("mixpanel: " + rest.Truncate(d.client.Clean(reason), 300)))
	}
	return nil
}
