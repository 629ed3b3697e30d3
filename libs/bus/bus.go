// Package bus names and provisions everything Ebb keeps in NATS JetStream:
// the streams that carry work between services, the KV buckets of the
// control plane and the object store of snapshots. Every service calls
// Provision at start; it is idempotent.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Streams.
const (
	StreamRuns     = "EBB_RUNS"     // ebb.run.<event>.<sync>: run lifecycle events, work queue
	StreamRecords  = "EBB_RECORDS"  // ebb.records.<sync>: extracted record batches, work queue
	StreamDeliver  = "EBB_DELIVER"  // ebb.deliver.<destination>.<partition>: mapped batches, work queue
	StreamResults  = "EBB_RESULTS"  // ebb.results.<sync>: per-record outcomes of each batch, work queue
	StreamFailures = "EBB_FAILURES" // ebb.failures.<sync>.<run>: failed records, kept for inspection
	StreamPlans    = "EBB_PLANS"    // ebb.plan.<sync>.<run>: what a dry run would send, kept an hour
	StreamHistory  = "EBB_HISTORY"  // ebb.history.<sync>.<run>: every record's outcome, for ebb records find
)

// KV buckets and the object store.
const (
	BucketConfig    = "ebb_config"    // source.<name>, destination.<name>, sync.<name>
	BucketRuns      = "ebb_runs"      // run.<sync>.<run_id>, active.<sync>
	BucketState     = "ebb_state"     // snapshot.<sync>, checkpoint.<run_id>.<stage>, lastrun.<sync>
	BucketLeases    = "ebb_leases"    // scheduler
	BucketValues    = "ebb_values"    // <sync>.<key hash>: last payload sent, for syncs with keep_values
	ObjectSnapshots = "ebb_snapshots" // <sync>/<run_id>/{snapshot,changes,committed}
)

// Subjects.
func RunRequested(sync string) string  { return "ebb.run.requested." + sync }
func RunDiffed(sync string) string     { return "ebb.run.diffed." + sync }
func RunDelivered(sync string) string  { return "ebb.run.delivered." + sync }
func Records(sync string) string       { return "ebb.records." + sync }
func Results(sync string) string       { return "ebb.results." + sync }
func Failures(sync, run string) string { return fmt.Sprintf("ebb.failures.%s.%s", sync, run) }
func Plan(sync, run string) string     { return fmt.Sprintf("ebb.plan.%s.%s", sync, run) }
func History(sync, run string) string  { return fmt.Sprintf("ebb.history.%s.%s", sync, run) }
func Deliver(dest string, partition int) string {
	return fmt.Sprintf("ebb.deliver.%s.%d", dest, partition)
}

// Limits bound every stream, so a slow stage fills its input and the stage
// before it waits (publishes are refused and retried) instead of growing.
type Limits struct {
	Replicas     int
	WorkMaxBytes int64         // per work-queue stream
	FailuresAge  time.Duration // how long failed records are kept
	HistoryAge   time.Duration // how long record history is kept
	HistoryBytes int64         // and at most how much of it
	// Duplicates is the Nats-Msg-Id duplicate window: a message published
	// again with the same id within it is stored once. It must outlast the
	// longest gap between a publish and its repeat, which comes from a
	// handler that crashed after publishing and whose message is redelivered
	// after the consumer's AckWait (DefaultAckWait; a destination's timeout
	// + 30s for delivery). Ten minutes covers several crashes in a row.
	Duplicates time.Duration
	Storage    jetstream.StorageType
}

// DefaultLimits suit one node.
func DefaultLimits() Limits {
	return Limits{
		Replicas:     1,
		WorkMaxBytes: 512 << 20,
		FailuresAge:  30 * 24 * time.Hour,
		HistoryAge:   7 * 24 * time.Hour,
		HistoryBytes: 1 << 30,
		Duplicates:   10 * time.Minute,
		Storage:      jetstream.FileStorage,
	}
}

// Connect dials NATS with settings fit for a long-running service.
func Connect(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("opening JetStream: %w", err)
	}
	return nc, js, nil
}

// Provision creates or updates every stream, bucket and store.
func Provision(ctx context.Context, js jetstream.JetStream, l Limits) error {
	work := func(name string, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Subjects: subjects, Retention: jetstream.WorkQueuePolicy,
			Storage: l.Storage, Replicas: l.Replicas, MaxBytes: l.WorkMaxBytes,
			Discard: jetstream.DiscardNew, Duplicates: l.Duplicates,
		}
	}
	streams := []jetstream.StreamConfig{
		work(StreamRuns, "ebb.run.>"),
		work(StreamRecords, "ebb.records.>"),
		work(StreamDeliver, "ebb.deliver.>"),
		work(StreamResults, "ebb.results.>"),
		{
			Name: StreamFailures, Subjects: []string{"ebb.failures.>"}, Retention: jetstream.LimitsPolicy,
			Storage: l.Storage, Replicas: l.Replicas, MaxAge: l.FailuresAge, Duplicates: l.Duplicates,
		},
		{
			// The oldest history goes first when the cap is reached.
			Name: StreamHistory, Subjects: []string{"ebb.history.>"}, Retention: jetstream.LimitsPolicy,
			Storage: l.Storage, Replicas: l.Replicas, MaxAge: l.HistoryAge, MaxBytes: l.HistoryBytes,
			Discard: jetstream.DiscardOld, Duplicates: l.Duplicates,
		},
		{
			// Dry runs (ebb sync plan) are read at once; an hour and a
			// size cap keep a forgotten big one from filling the disk.
			Name: StreamPlans, Subjects: []string{"ebb.plan.>"}, Retention: jetstream.LimitsPolicy,
			Storage: l.Storage, Replicas: l.Replicas, MaxAge: time.Hour, MaxBytes: 256 << 20,
			Discard: jetstream.DiscardOld, Duplicates: l.Duplicates,
		},
	}
	for _, cfg := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("provisioning stream %s: %w", cfg.Name, err)
		}
	}
	for _, b := range []string{BucketConfig, BucketRuns, BucketState, BucketLeases, BucketValues} {
		cfg := jetstream.KeyValueConfig{Bucket: b, Storage: l.Storage, Replicas: l.Replicas, History: 1}
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("provisioning KV bucket %s: %w", b, err)
		}
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: ObjectSnapshots, Storage: l.Storage, Replicas: l.Replicas,
	}); err != nil {
		return fmt.Errorf("provisioning object store %s: %w", ObjectSnapshots, err)
	}
	return nil
}

// Publish publishes data with a deterministic message id and waits for the
// stream's acknowledgement, retrying while the stream is full or NATS is
// unreachable, until ctx ends. Retrying is safe: the id makes it idempotent.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, data []byte, msgID string) error {
	backoff := 50 * time.Millisecond
	for {
		_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publishing %s: %w", subject, errors.Join(ctx.Err(), err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publishing %s: %w", subject, errors.Join(ctx.Err(), err))
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
