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
}

type service struct{ Deps }

// Run consumes results until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 4
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
	return bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
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
	r, err := s.Plane.Runs.Update(ctx, rb.Sync, rb.RunID, func(r *run.Run) error {
		if r.State.Terminal() || !r.MarkBatch(record.ResultIndex(rb.Seq, rb.Partition, r.Partitions)) {
			return run.ErrSkip
		}
		count(r, rb.Results)
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
		default:
			o.Failed++
		}
	}
}
