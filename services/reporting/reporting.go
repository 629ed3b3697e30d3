// Package reporting is the service that turns per-record results into run
// counts. It keeps failed records queryable by run, counts each result batch
// once (a bitmap in the run guards against redelivery), and when every
// planned record has a final result it announces ebb.run.delivered, on
// which the differ commits the snapshot.
package reporting

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
)

// Deps is what reporting needs.
type Deps struct {
	Plane   *plane.Plane
	Log     zerolog.Logger
	Workers int
	// SlowRunCheck is how often active runs are checked for slow_run
	// alerts; default 5s.
	SlowRunCheck time.Duration
}

type service struct{ Deps }

// Run consumes results until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 4
	}
	if d.SlowRunCheck <= 0 {
		d.SlowRunCheck = 5 * time.Second
	}
	d.Log = d.Log.With().Str(logging.FieldService, "reporting").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamResults, jetstream.ConsumerConfig{
		Durable:       "reporting",
		FilterSubject: bus.Results("*"),
		MaxAckPending: d.Workers * 16,
	})
	if err != nil {
		return err
	}
	s := &service{d}
	alerts := &alerter{plane: d.Plane, log: d.Log, client: &http.Client{Timeout: 10 * time.Second}, slowEvery: d.SlowRunCheck}
	alertsDone := make(chan error, 1)
	go func() { alertsDone <- alerts.run(ctx) }()
	err = bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
	if aerr := <-alertsDone; err == nil && ctx.Err() == nil {
		err = aerr
	}
	return err
}

func (s *service) handle(ctx context.Context, msg jetstream.Msg) error {
	var rb record.ResultBatch
	if err := json.Unmarshal(msg.Data(), &rb); err != nil {
		s.Log.Error().Err(err).Msg("dropping malformed result batch")
		return nil
	}
	if err := run.RecordFailures(ctx, s.Plane.JS, rb); err != nil {
		return err
	}
	if err := run.RecordHistory(ctx, s.Plane.JS, rb); err != nil {
		return err
	}
	r, err := s.Plane.Runs.Update(ctx, rb.Sync, rb.RunID, func(r *run.Run) error {
		if r.State.Terminal() || !r.MarkBatch(record.ResultIndex(rb.Seq, rb.Partition, r.Partitions)) {
			return run.ErrSkip
		}
		count(r, rb.Results)
		r.Retries += int64(rb.Retries)
		return nil
	})
	if errors.Is(err, run.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !r.State.Terminal() && r.Final() >= r.Planned.Total() {
		// Announced again on every redelivery: the message id makes it once.
		return run.Announce(ctx, s.Plane.JS, bus.RunDelivered(r.Sync), r.ID, r.Sync, "delivered")
	}
	return nil
}

// count adds results to the run's outcome counts, by what the differ found.
func count(r *run.Run, results []record.Result) {
	for _, res := range results {
		o := &r.Changes
		switch res.Change {
		case record.Added:
			o = &r.Adds
		case record.Deleted:
			o = &r.Deletes
		}
		switch res.Status {
		case record.Delivered:
			o.Delivered++
		case record.Vanished:
			o.Vanished++
		case record.Filtered:
			o.Filtered++
		default:
			o.Failed++
		}
	}
}
