// Package segment sends records to a Segment-compatible HTTP tracking API
// (Segment, RudderStack, Jitsu, ...), through its batch endpoint:
//
//	POST <endpoint>/v1/batch
//	Authorization: Basic base64(<write key>:)
//
//	{"batch":[{"type":"identify","userId":"42","traits":{...},"messageId":"..."}, ...]}
//
// Each record is one call, identify, track or group as configured. The
// tracking API has no delete: deletes fail per record (user deletion goes
// through Segment's separate regulations API). Its idempotency is per call:
// each carries a messageId derived from sync, run, op and key, which Segment
// deduplicates on, so a batch sent again after a crash is dropped there.
package segment

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

// The API's documented limits: 500KB per request, 32KB per call.
const (
	maxBatchBytes = 500 << 10
	maxCallBytes  = 32 << 10
)

// Spec declares the config.
var Spec = destination.Spec{
	Type: "segment",
	Fields: []destination.Field{
		{Name: "endpoint", Type: destination.TypeURL, Default: "https://api.segment.io", Doc: "the tracking API's base URL (a RudderStack data plane URL, https://events.eu1.segmentapis.com, ...)"},
		{Name: "write_key", Type: destination.TypeString, Required: true, Secret: true, Doc: "the source's write key, sent as the basic auth user"},
		{Name: "call", Type: destination.TypeEnum, Enum: []string{"identify", "track", "group"}, Default: "identify", Doc: "the call each record becomes"},
		{Name: "event", Type: destination.TypeString, Doc: "the event name of track calls (required with call: track)"},
		{Name: "user_id_field", Type: destination.TypeString, Doc: "the field holding the userId (default: the key's only column)"},
		{Name: "group_id_field", Type: destination.TypeString, Doc: "the field holding the groupId of group calls (required with call: group)"},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate},
}

// Destination is a tracking API source. It is safe for concurrent use.
type Destination struct {
	url      string
	writeKey string
	call     string
	event    string
	userID   string
	groupID  string
	client   *rest.Client
}

// Open validates cfg.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	v, err := Spec.Parse(cfg)
	if err != nil {
		return nil, err
	}
	d := &Destination{
		url:      v.String("endpoint") + "/v1/batch",
		writeKey: v.String("write_key"),
		call:     v.String("call"),
		event:    v.String("event"),
		userID:   v.String("user_id_field"),
		groupID:  v.String("group_id_field"),
		client:   rest.New("segment", opts, Spec.Secrets(v)...),
	}
	if d.call == "track" && d.event == "" {
		return nil, errors.New("segment config.event is required with call: track")
	}
	if d.call == "group" && d.groupID == "" {
		return nil, errors.New("segment config.group_id_field is required with call: group")
	}
	return d, nil
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.Close()
	return nil
}

// Write sends the batch's calls, in as many requests as the 500KB limit
// asks for.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	var chunk []json.RawMessage
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := d.send(ctx, chunk)
		chunk, size = chunk[:0], 0
		return err
	}
	for i, r := range b.Records {
		call, err := d.encode(b, r)
		if err != nil {
			errs[i] = err
			continue
		}
		// Leave room for the envelope and the commas.
		if size+len(call)+64 > maxBatchBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		chunk = append(chunk, call)
		size += len(call) + 1
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return errs, nil
}

func (d *Destination) encode(b destination.Batch, r record.Record) (json.RawMessage, error) {
	if !Spec.Supports(r.Op) {
		return nil, fmt.Errorf("segment: the tracking API cannot %s; use a sync mode without deletes", r.Op)
	}
	userID, err := destination.ID(r, d.userID)
	if err != nil {
		return nil, fmt.Errorf("segment userId: %w", err)
	}
	call := map[string]any{"type": d.call, "userId": userID, "messageId": destination.MessageID(b, r)}
	switch d.call {
	case "identify":
		call["traits"] = data(r)
	case "track":
		call["event"] = d.event
		call["properties"] = data(r)
	case "group":
		groupID, err := destination.ID(r, d.groupID)
		if err != nil {
			return nil, fmt.Errorf("segment groupId: %w", err)
		}
		call["groupId"] = groupID
		call["traits"] = data(r)
	}
	out, err := json.Marshal(call)
	if err != nil {
		return nil, fmt.Errorf("segment: encoding the call: %w", err)
	}
	if len(out) > maxCallBytes {
		return nil, fmt.Errorf("segment: the call is %d bytes, over the API's 32KB limit", len(out))
	}
	return out, nil
}

// data is never null: the API wants an object.
func data(r record.Record) map[string]any {
	if r.Data == nil {
		return map[string]any{}
	}
	return r.Data
}

func (d *Destination) send(ctx context.Context, calls []json.RawMessage) error {
	body, err := json.Marshal(map[string]any{"batch": calls})
	if err != nil {
		return destination.Permanent(fmt.Errorf("segment: encoding the batch: %w", err))
	}
	req, err := d.client.Request(ctx, http.MethodPost, d.url, "application/json", body)
	if err != nil {
		return err
	}
	req.SetBasicAuth(d.writeKey, "")
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	if resp.Status/100 != 2 {
		// A 400 names no call: the delivery splits the batch to find it.
		return d.client.Reject(resp)
	}
	return nil
}
