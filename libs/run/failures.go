package run

import (
	"context"
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
func RecordFailures(ctx context.Context, b *bus.Bus, rb record.ResultBatch) error {
	var failed []record.Result
	for _, r := range rb.Results {
		if r.Status == record.Failed || r.Status == record.Vanished {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	id := record.MsgID(rb.Sync, rb.RunID, "failures", rb.Seq, rb.Partition)
	return publishChunks(ctx, b, bus.Failures(rb.Sync, rb.RunID), id, failed, func(part []record.Result) ([]byte, error) {
		out := rb
		out.Results = part
		return record.EncodeResults(out)
	})
}

// publishChunks publishes items as one message, or as several of at most
// half the largest inline message each when one would not fit: the
// failures and history streams are read as they are, with no payload
// store behind them. Each chunk's id is id/<items left>, the same
// whenever the same items are published again.
func publishChunks[T any](ctx context.Context, b *bus.Bus, subject, id string, items []T, encode func([]T) ([]byte, error)) error {
	for len(items) > 0 {
		n := len(items)
		var data []byte
		for {
			var err error
			if data, err = encode(items[:n]); err != nil {
				return fmt.Errorf("encoding %s: %w", subject, err)
			}
			if len(data) <= b.MaxInline()/2 || n == 1 {
				break
			}
			n = max(n/2, 1)
		}
		if err := b.PublishWaiting(ctx, subject, data, fmt.Sprintf("%s/%d", id, len(items))); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
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
		rb, err := record.DecodeResults(msg.Data())
		if err != nil {
			return nil, fmt.Errorf("decoding failures of run %s: %w", runID, err)
		}
		out = append(out, rb.Results...)
		if limit > 0 && len(out) > limit {
			return out[:limit], ErrTooManyFailures
		}
	}
	return out, nil
}
