package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/record"
)

// RecordFailures publishes a batch's failed and vanished results (not the
// delivered or filtered ones, which are successes) to the
// failures stream, where they stay queryable by run and from where the
// commit learns which keys keep their old snapshot entry.
func RecordFailures(ctx context.Context, js jetstream.JetStream, rb record.ResultBatch) error {
	var failed []record.Result
	for _, r := range rb.Results {
		if r.Status == record.Failed || r.Status == record.Vanished {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	rb.Results = failed
	data, err := json.Marshal(rb)
	if err != nil {
		return fmt.Errorf("encoding failures: %w", err)
	}
	id := record.MsgID(rb.Sync, rb.RunID, "failures", rb.Seq, rb.Partition)
	return bus.Publish(ctx, js, bus.Failures(rb.Sync, rb.RunID), data, id)
}

// ErrTooManyFailures is returned by Failures when a run has more failed
// records than the caller's limit.
var ErrTooManyFailures = errors.New("too many failed records")

// Failures reads a run's failed records, up to limit (ErrTooManyFailures
// beyond it; limit 0 means no limit).
func Failures(ctx context.Context, js jetstream.JetStream, sync, runID string, limit int) ([]record.Result, error) {
	stream, err := js.Stream(ctx, bus.StreamFailures)
	if err != nil {
		return nil, fmt.Errorf("opening failures stream: %w", err)
	}
	subject := bus.Failures(sync, runID)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, fmt.Errorf("reading failures of run %s: %w", runID, err)
	}
	pending := info.State.Subjects[subject]
	if pending == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, fmt.Errorf("reading failures of run %s: %w", runID, err)
	}
	var out []record.Result
	for read := uint64(0); read < pending; read++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("reading failures of run %s: %w", runID, err)
		}
		var rb record.ResultBatch
		if err := json.Unmarshal(msg.Data(), &rb); err != nil {
			return nil, fmt.Errorf("decoding failures of run %s: %w", runID, err)
		}
		out = append(out, rb.Results...)
		if limit > 0 && len(out) > limit {
			return out[:limit], ErrTooManyFailures
		}
	}
	return out, nil
}
