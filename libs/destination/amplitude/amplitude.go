// Package amplitude writes records as Amplitude user properties through
// the Identify API:
//
//	POST <api_host>/identify   (application/x-www-form-urlencoded)
//	api_key=<key>&identification=[{"user_id":...,"user_properties":{"$set":{...}}}, ...]
//
// upsert and update are $set, insert is $setOnce. Deletes are not
// supported: deleting a user is the separate User Privacy API, and $unset
// needs property names a deleted row no longer has; a sync in mirror mode
// is refused at config time (see Spec.Ops) and a delete that still comes
// fails on its own. The Identify API takes no idempotency key; $set and
// $setOnce are idempotent, so a batch sent again changes nothing. It names
// no identification when it rejects a request: the batch fails as a whole
// and the delivery splits it to find the record.
package amplitude

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/rest"
	"github.com/ebb-etl/ebb/libs/record"
)

// maxIdentifications follows the HTTP V2 API's per-request limit, which
// Amplitude says the Identify API shares.
const maxIdentifications = 2000

// Spec declares the config.
var Spec = destination.Spec{
	Type: "amplitude",
	Fields: []destination.Field{
		{Name: "api_key", Type: destination.TypeString, Required: true, Secret: true, Doc: "the project's API key"},
		{Name: "api_host", Type: destination.TypeURL, Default: "https://api2.amplitude.com", Doc: "https://api.eu.amplitude.com for EU residency"},
		{Name: "user_id_field", Type: destination.TypeString, Doc: "the field holding the user_id (default: the key's only column)"},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate},
}

// Destination is an Amplitude project. It is safe for concurrent use.
type Destination struct {
	url     string
	key     string
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
		url:     v.String("api_host") + "/identify",
		key:     v.String("api_key"),
		idField: v.String("user_id_field"),
		client:  rest.New("amplitude", opts, Spec.Secrets(v)...),
	}, nil
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.Close()
	return nil
}

// Write sends the identifications, 2000 per request.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	var ids []map[string]any
	for i, r := range b.Records {
		id, err := d.identification(r)
		if err != nil {
			errs[i] = err
			continue
		}
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += maxIdentifications {
		if err := d.send(ctx, ids[start:min(start+maxIdentifications, len(ids))]); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

func (d *Destination) identification(r record.Record) (map[string]any, error) {
	op := "$set"
	switch r.Op {
	case record.OpUpsert, record.OpUpdate:
	case record.OpInsert:
		op = "$setOnce"
	default:
		return nil, fmt.Errorf("amplitude: the Identify API cannot %s users; use a sync mode without deletes", r.Op)
	}
	uid, err := destination.ID(r, d.idField)
	if err != nil {
		return nil, fmt.Errorf("amplitude user_id: %w", err)
	}
	props := r.Data
	if props == nil {
		props = map[string]any{}
	}
	return map[string]any{"user_id": uid, "user_properties": map[string]any{op: props}}, nil
}

func (d *Destination) send(ctx context.Context, ids []map[string]any) error {
	js, err := json.Marshal(ids)
	if err != nil {
		return destination.Permanent(fmt.Errorf("amplitude: encoding the identifications: %w", err))
	}
	form := url.Values{"api_key": {d.key}, "identification": {string(js)}}
	req, err := d.client.Request(ctx, http.MethodPost, d.url, "application/x-www-form-urlencoded", []byte(form.Encode()))
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	if resp.Status/100 == 2 {
		return nil
	}
	// Amplitude says 400 for a bad key, with a body naming api_key.
	if resp.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(string(resp.Body)), "api_key") {
		return d.client.AuthRejected(resp)
	}
	return d.client.Reject(resp)
}
