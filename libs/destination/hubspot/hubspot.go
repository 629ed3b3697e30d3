// Package hubspot writes records to HubSpot CRM objects (contacts,
// companies, deals, custom objects) through the CRM v3 batch endpoints,
// identified by a unique property (email for contacts, or any property
// marked unique):
//
//	upsert, insert, update → POST /crm/v3/objects/{object}/batch/upsert
//	delete                 → POST /crm/v3/objects/{object}/batch/read (idProperty → object id)
//	                         POST /crm/v3/objects/{object}/batch/archive
//
// Inserts and updates are upserts too: a batch sent again after a crash
// must not fail on objects its first attempt created, and HubSpot has no
// idempotency key, so an idempotent call is the only protection. Archive
// takes HubSpot's own object ids only, hence the read: an object the read
// does not find is already gone, which is what a delete wants.
package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/rest"
	"github.com/ebb-etl/ebb/libs/record"
)

// maxInputs is the CRM v3 batch endpoints' limit.
const maxInputs = 100

// Spec declares the config.
var Spec = destination.Spec{
	Type: "hubspot",
	Fields: []destination.Field{
		{Name: "token", Type: destination.TypeString, Required: true, Secret: true, Doc: "a private app access token (Bearer)"},
		{Name: "object", Type: destination.TypeString, Required: true, Doc: "the object type: contacts, companies, deals, or a custom object's name or id"},
		{Name: "id_property", Type: destination.TypeString, Required: true, Doc: "the unique property records are matched on (email for contacts)"},
		{Name: "id_field", Type: destination.TypeString, Doc: "the record field holding that property's value (default: the key's only column)"},
		{Name: "base_url", Type: destination.TypeURL, Default: "https://api.hubapi.com", Doc: "the API's base URL"},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete},
}

// Destination is one HubSpot object type. It is safe for concurrent use.
type Destination struct {
	token      string
	objectURL  string
	idProperty string
	idField    string
	client     *rest.Client
}

// Open validates cfg.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	v, err := Spec.Parse(cfg)
	if err != nil {
		return nil, err
	}
	return &Destination{
		token:      v.String("token"),
		objectURL:  v.String("base_url") + "/crm/v3/objects/" + v.String("object") + "/batch/",
		idProperty: v.String("id_property"),
		idField:    v.String("id_field"),
		client:     rest.New("hubspot", opts, Spec.Secrets(v)...),
	}, nil
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.Close()
	return nil
}

// input is one record in a request: its position in the batch and its id.
type input struct {
	pos int
	id  string
}

// Write sends upserts then deletes, at most 100 per request.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	var upserts, deletes []input
	for i, r := range b.Records {
		id, err := destination.ID(r, d.idField)
		if err != nil {
			errs[i] = fmt.Errorf("hubspot %s: %w", d.idProperty, err)
			continue
		}
		if r.Op == record.OpDelete {
			deletes = append(deletes, input{i, id})
		} else {
			upserts = append(upserts, input{i, id})
		}
	}
	for start := 0; start < len(upserts); start += maxInputs {
		if err := d.upsert(ctx, b, upserts[start:min(start+maxInputs, len(upserts))], errs); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(deletes); start += maxInputs {
		if err := d.archive(ctx, deletes[start:min(start+maxInputs, len(deletes))], errs); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

func (d *Destination) upsert(ctx context.Context, b destination.Batch, ins []input, errs []error) error {
	type upsertInput struct {
		IDProperty string         `json:"idProperty"`
		ID         string         `json:"id"`
		Properties map[string]any `json:"properties"`
	}
	var body struct {
		Inputs []upsertInput `json:"inputs"`
	}
	var sent []input
	for _, in := range ins {
		props, err := properties(b.Records[in.pos].Data)
		if err != nil {
			errs[in.pos] = err
			continue
		}
		body.Inputs = append(body.Inputs, upsertInput{d.idProperty, in.id, props})
		sent = append(sent, in)
	}
	if len(sent) == 0 {
		return nil
	}
	resp, err := d.post(ctx, "upsert", body)
	if err != nil {
		return err
	}
	return d.recordErrors(resp, sent, errs, "")
}

// properties are flat values: HubSpot stores every property as text.
func properties(data map[string]any) (map[string]any, error) {
	props := make(map[string]any, len(data))
	for k, v := range data {
		switch x := v.(type) {
		case nil:
			props[k] = "" // clears the property
		case string, bool, json.Number, int64, int, float64:
			props[k] = x
		default:
			return nil, fmt.Errorf("hubspot property %q is a %T; HubSpot properties are flat values (map it to text)", k, v)
		}
	}
	return props, nil
}

// archive deletes by id property: read the objects' HubSpot ids, then
// archive those found.
func (d *Destination) archive(ctx context.Context, ins []input, errs []error) error {
	type id struct {
		ID string `json:"id"`
	}
	read := struct {
		IDProperty string   `json:"idProperty"`
		Inputs     []id     `json:"inputs"`
		Properties []string `json:"properties"`
	}{IDProperty: d.idProperty, Properties: []string{d.idProperty}}
	for _, in := range ins {
		read.Inputs = append(read.Inputs, id{in.id})
	}
	resp, err := d.post(ctx, "read", read)
	if err != nil {
		return err
	}
	// Not found is what a delete wants: only other errors fail records.
	if err := d.recordErrors(resp, ins, errs, "OBJECT_NOT_FOUND"); err != nil {
		return err
	}
	var found struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if err := json.Unmarshal(resp.Body, &found); err != nil {
		return fmt.Errorf("hubspot: reading the batch/read answer: %w", err)
	}
	if len(found.Results) == 0 {
		return nil
	}
	var archive struct {
		Inputs []id `json:"inputs"`
	}
	for _, r := range found.Results {
		archive.Inputs = append(archive.Inputs, id{r.ID})
	}
	_, err = d.post(ctx, "archive", archive)
	return err
}

func (d *Destination) post(ctx context.Context, endpoint string, v any) (*rest.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, destination.Permanent(fmt.Errorf("hubspot: encoding the request: %w", err))
	}
	req, err := d.client.Request(ctx, http.MethodPost, d.objectURL+endpoint, "application/json", body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.Status/100 != 2 {
		return nil, d.client.Reject(resp)
	}
	return resp, nil
}

// recordErrors maps a 207 Multi-Status answer's errors to the inputs they
// name in context.ids; errors of category ignore are not failures. An
// error that names no input leaves the culprit unknown: the batch fails as
// a whole, permanently, and the delivery splits it to find out.
func (d *Destination) recordErrors(resp *rest.Response, ins []input, errs []error, ignore string) error {
	if resp.Status != http.StatusMultiStatus {
		return nil
	}
	var answer struct {
		Errors []struct {
			Category string              `json:"category"`
			Message  string              `json:"message"`
			Context  map[string][]string `json:"context"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(resp.Body, &answer); err != nil {
		return destination.Permanent(fmt.Errorf("hubspot: HTTP 207 with an unreadable body: %s", d.client.Snippet(resp.Body)))
	}
	byID := make(map[string][]int, len(ins))
	for _, in := range ins {
		byID[in.id] = append(byID[in.id], in.pos)
	}
	for _, e := range answer.Errors {
		if e.Category == ignore {
			continue
		}
		named := 0
		for _, id := range e.Context["ids"] {
			for _, pos := range byID[id] {
				errs[pos] = d.client.Reason(e.Category + ": " + e.Message)
				named++
			}
		}
		if named == 0 {
			return destination.Permanent(errors.New("hubspot: HTTP 207 with an error naming no input: " + rest.Truncate(d.client.Clean(e.Message), 300) + " (" + strconv.Itoa(len(answer.Errors)) + " errors)"))
		}
	}
	return nil
}
