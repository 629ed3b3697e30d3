// Package nats publishes one JSON message per record to a NATS subject
// rendered from a template, such as "crm.contacts.{{ key }}":
//
//	{"sync":"...","run_id":"...","op":"upsert","key":{...},"data":{...}}
//
// With jetstream: true each message is published to the stream that
// captures its subject and Write returns once every one is acknowledged;
// each carries a Nats-Msg-Id derived from sync, run, op and key, so a batch
// published again after a crash is dropped by the stream's duplicate
// window. Without it, messages are published on core NATS and Write
// returns once the server has them (a flush), which is at most once for
// subscribers that are not listening.
package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/record"
)

// Spec declares the config.
var Spec = destination.Spec{
	Type: "nats",
	Fields: []destination.Field{
		{Name: "url", Type: destination.TypeString, Required: true, Secret: true, Doc: "the server URL(s), comma-separated; may hold user:password or a token"},
		{Name: "subject", Type: destination.TypeString, Required: true, Doc: `the subject template, such as "crm.contacts.{{ key }}"`},
		{Name: "credentials", Type: destination.TypeString, Doc: "a .creds file (JWT and NKey) to authenticate with"},
		{Name: "jetstream", Type: destination.TypeBool, Default: false, Doc: "publish to JetStream and wait for each message's ack"},
	},
	Ops: []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete},
}

// Destination is a NATS connection and a subject template. It is safe for
// concurrent use.
type Destination struct {
	nc      *nats.Conn
	js      jetstream.JetStream // nil for core NATS
	subject *destination.Template
	timeout time.Duration
}

// Open validates cfg and connects.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	v, err := Spec.Parse(cfg)
	if err != nil {
		return nil, err
	}
	subject, err := destination.ParseTemplate(v.String("subject"))
	if err != nil {
		return nil, fmt.Errorf("nats config.subject: %w", err)
	}
	d := &Destination{subject: subject, timeout: opts.Timeout}
	if d.timeout <= 0 {
		d.timeout = config.DefaultTimeout
	}
	nopts := []nats.Option{nats.Name("ebb destination"), nats.Timeout(d.timeout), nats.MaxReconnects(-1)}
	if creds := v.String("credentials"); creds != "" {
		nopts = append(nopts, nats.UserCredentials(creds))
	}
	d.nc, err = nats.Connect(v.String("url"), nopts...)
	if err != nil {
		// The URL may hold a password: never quoted.
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			return nil, fmt.Errorf("nats auth rejected: %w", err)
		}
		return nil, fmt.Errorf("nats: connecting: %w", err)
	}
	if v.Bool("jetstream") {
		d.js, err = jetstream.New(d.nc, jetstream.WithPublishAsyncTimeout(d.timeout))
		if err != nil {
			d.nc.Close()
			return nil, fmt.Errorf("nats: jetstream: %w", err)
		}
	}
	return d, nil
}

// Close closes the connection.
func (d *Destination) Close() error {
	d.nc.Close()
	return nil
}

// message is what each record becomes.
type message struct {
	Sync  string         `json:"sync"`
	RunID string         `json:"run_id"`
	Op    record.Op      `json:"op"`
	Key   map[string]any `json:"key"`
	Data  map[string]any `json:"data,omitempty"`
}

// Write publishes one message per record.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	futures := make([]jetstream.PubAckFuture, len(b.Records))
	subjects := make([]string, len(b.Records))
	for i, r := range b.Records {
		subj, data, err := d.encode(b, r)
		if err != nil {
			errs[i] = err
			continue
		}
		subjects[i] = subj
		if d.js == nil {
			err = d.nc.Publish(subj, data)
		} else {
			futures[i], err = d.js.PublishAsync(subj, data, jetstream.WithMsgID(destination.MessageID(b, r)))
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			errs[i] = fmt.Errorf("nats: the message is %d bytes, over the server's max_payload of %d", len(data), d.nc.MaxPayload())
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("nats: publishing: %w", err)
		}
	}
	if d.js == nil {
		fctx, cancel := context.WithTimeout(ctx, d.timeout)
		defer cancel()
		if err := d.nc.FlushWithContext(fctx); err != nil {
			return nil, fmt.Errorf("nats: flushing: %w", err)
		}
		return errs, nil
	}
	return errs, d.acks(ctx, futures, subjects, errs)
}

// acks waits for every publish's ack. No stream answering for a subject is
// that record's failure (a subject template that reaches past the stream);
// any other failure is transient for the batch, which the Nats-Msg-Id makes
// safe to publish again.
func (d *Destination) acks(ctx context.Context, futures []jetstream.PubAckFuture, subjects []string, errs []error) error {
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
				errs[i] = fmt.Errorf("nats: no stream captures subject %q", subjects[i])
				continue
			}
			return fmt.Errorf("nats: waiting for the ack of %q: %w", subjects[i], err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (d *Destination) encode(b destination.Batch, r record.Record) (string, []byte, error) {
	subj, err := d.subject.Render(r, token)
	if err != nil {
		return "", nil, fmt.Errorf("nats subject: %w", err)
	}
	if !validSubject(subj) {
		return "", nil, fmt.Errorf("nats: %q is not a valid subject to publish to", subj)
	}
	data, err := json.Marshal(message{Sync: b.Sync, RunID: b.RunID, Op: r.Op, Key: r.Key, Data: r.Data})
	if err != nil {
		return "", nil, fmt.Errorf("nats: encoding the record: %w", err)
	}
	return subj, data, nil
}

// token makes a value one subject token: separators, wildcards and
// whitespace become '_', so a value never changes the subject's shape.
func token(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for _, t := range strings.Split(s, ".") {
		if t == "" || t == "*" || t == ">" || strings.ContainsAny(t, " \t\r\n") {
			return false
		}
	}
	return true
}
