// Package slack posts one message per record to a Slack incoming webhook,
// its text rendered from a template such as "New signup: {{ email }}" (see
// destination.Template). It suits alert-style syncs, usually in insert mode.
//
// Slack allows about one message per second per webhook, hence the type's
// batch size of one and its rate (config.Limits). A webhook takes no
// idempotency key: a message whose answer was lost may be posted twice.
package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/rest"
	"github.com/ebb-etl/ebb/libs/record"
)

// Spec declares the config.
var Spec = destination.Spec{
	Type: "slack",
	Fields: []destination.Field{
		{Name: "webhook_url", Type: destination.TypeURL, Required: true, Secret: true, Doc: "the incoming webhook's URL (it is the credential)"},
		{Name: "text", Type: destination.TypeString, Required: true, Doc: `the message template, such as "New signup: {{ email }}"; {{ key }} is the record's key`},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete},
}

// Destination is an incoming webhook. It is safe for concurrent use.
type Destination struct {
	url    string
	text   *destination.Template
	client *rest.Client
}

// Open validates cfg.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	v, err := Spec.Parse(cfg)
	if err != nil {
		return nil, err
	}
	text, err := destination.ParseTemplate(v.String("text"))
	if err != nil {
		return nil, fmt.Errorf("slack config.text: %w", err)
	}
	return &Destination{
		url:    v.String("webhook_url"),
		text:   text,
		client: rest.New("slack", opts, v.String("webhook_url")),
	}, nil
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.Close()
	return nil
}

// Write posts one message per record, in order. A failure after some
// messages went out fails the remaining records rather than the batch:
// retrying the batch would post the delivered messages again.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	sent := 0
	for i, r := range b.Records {
		text, err := d.text.Render(r, escape)
		if err != nil {
			errs[i] = fmt.Errorf("slack: %w", err)
			continue
		}
		if err := d.post(ctx, text); err != nil {
			if sent == 0 {
				return nil, err
			}
			for j := i; j < len(errs); j++ {
				errs[j] = err
			}
			return errs, nil
		}
		sent++
	}
	return errs, nil
}

// escape keeps record values from being read as Slack markup (links,
// mentions): Slack asks for &, < and > to be escaped.
var escape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

func (d *Destination) post(ctx context.Context, text string) error {
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return destination.Permanent(fmt.Errorf("slack: encoding the message: %w", err))
	}
	req, err := d.client.Request(ctx, http.MethodPost, d.url, "application/json", body)
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	switch {
	case resp.Status/100 == 2:
		return nil
	// The webhook was revoked, mistyped, or its channel archived.
	case resp.Status == http.StatusNotFound, resp.Status == http.StatusGone:
		return d.client.AuthRejected(resp)
	}
	return d.client.Reject(resp)
}
