// Package bus names and provisions everything Ebb keeps in NATS JetStream:
// the streams that carry work between services, the KV buckets of the
// control plane and the object store of snapshots. Every service calls
// Provision at start; it is idempotent.
package bus

import (
	"context"
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
	ObjectPayloads  = "ebb_payloads"  // <sync>/<run_id>/<stage>/...: bodies of messages too large to travel inline
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

// DeliverLanes matches every lane of a destination.
func DeliverLanes(dest string) string { return "ebb.deliver." + dest + ".*" }

// Limits bound every stream in bytes and in messages. The work queues that
// carry a run's data have a buffer per sync (record batches) and per
// destination lane (mapped batches), so a slow destination fills its own
// lanes and then its syncs' buffers, and the stages in front hand its work
// back instead of waiting: every other sync goes on.
type Limits struct {
	Replicas int
	// WorkMaxBytes caps each work-queue stream as a whole. It is the
	// backstop behind the per-subject buffers: size it above the buffers
	// you expect to be full at once (see the README).
	WorkMaxBytes int64
	// SyncBuffer is how many extracted record batches may wait per sync
	// (EBB_RECORDS, per subject), each at most the server's max payload.
	SyncBuffer int64
	// LaneBuffer is how many mapped batches may wait per destination lane
	// (EBB_DELIVER, per subject), each at most the server's max payload.
	LaneBuffer   int64
	FailuresAge  time.Duration // how long failed records are kept
	HistoryAge   time.Duration // how long record history is kept
	HistoryBytes int64         // and at most how much of it
	// Duplicates is the Nats-Msg-Id duplicate window: a message published
	// again with the same id within it is stored once. It must outlast the
	// longest gap between a publish and its repeat, which comes from a
	// handler that crashed after publishing and whose message is redelivered
	// after the consumer's AckWait. Ten minutes covers several crashes in a
	// row; stages that hand work back for longer (a full buffer) record
	// what they published instead of relying on it.
	Duplicates time.Duration
	Storage    jetstream.StorageType
}

// DefaultLimits suit one node.
func DefaultLimits() Limits {
	return Limits{
		Replicas:     1,
		WorkMaxBytes: 2 << 30,
		SyncBuffer:   32,
		LaneBuffer:   32,
		FailuresAge:  30 * 24 * time.Hour,
		HistoryAge:   7 * 24 * time.Hour,
		HistoryBytes: 1 << 30,
		Duplicates:   10 * time.Minute,
		Storage:      jetstream.FileStorage,
	}
}

// Validate refuses limits that would leave a stream unbounded or unusable.
func (l Limits) Validate() error {
	switch {
	case l.Replicas < 1 || l.Replicas > 5:
		return fmt.Errorf("replicas must be between 1 and 5, not %d", l.Replicas)
	case l.WorkMaxBytes < 1<<20:
		return fmt.Errorf("the work streams' size limit must be at least 1 MiB, not %d bytes", l.WorkMaxBytes)
	case l.SyncBuffer < 1:
		return fmt.Errorf("the sync buffer must hold at least 1 batch, not %d", l.SyncBuffer)
	case l.LaneBuffer < 1:
		return fmt.Errorf("the lane buffer must hold at least 1 batch, not %d", l.LaneBuffer)
	}
	return nil
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

// leaderReadKV is the stream of a KV bucket read only from its leader:
// reads then see every write acknowledged before them. With direct gets
// (the KV default), a replica that has not caught up (a node just
// restarted) answers with an older value, and a guard that decides on it
// without writing (a claim finding the run still diffing) decides wrong:
// an extractor acked a run's announcement as "not for me" and the run sat
// in extracting. The stream is written as the KV layer would, but never
// with direct gets, not even for a moment: a client binds its reading mode
// when it opens the bucket, and one that bound to direct gets while they
// were on got no answers once they were off.
func leaderReadKV(bucket string, l Limits) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: "KV_" + bucket, Subjects: []string{"$KV." + bucket + ".>"},
		MaxMsgsPerSubject: 1, MaxBytes: -1, MaxMsgs: -1, MaxMsgSize: -1, MaxConsumers: -1,
		Storage: l.Storage, Replicas: l.Replicas, Discard: jetstream.DiscardNew,
		AllowRollup: true, DenyDelete: true, AllowDirect: false, Duplicates: 2 * time.Minute,
	}
}

// Provision creates or updates every stream, bucket and store.
func Provision(ctx context.Context, js jetstream.JetStream, l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	work := func(name string, perSubject int64, subjects ...string) jetstream.StreamConfig {
		cfg := jetstream.StreamConfig{
			Name: name, Subjects: subjects, Retention: jetstream.WorkQueuePolicy,
			Storage: l.Storage, Replicas: l.Replicas, MaxBytes: l.WorkMaxBytes,
			Discard: jetstream.DiscardNew, Duplicates: l.Duplicates,
		}
		if perSubject > 0 {
			// DiscardNewPerSubject refuses a message on a full subject.
			// Without it, DiscardNew would let the subject's oldest
			// message go to make room: on a work queue, a lost batch.
			cfg.MaxMsgsPerSubject, cfg.DiscardNewPerSubject = perSubject, true
		}
		return cfg
	}
	streams := []jetstream.StreamConfig{
		work(StreamRuns, 0, "ebb.run.>"),
		work(StreamRecords, l.SyncBuffer, "ebb.records.>"),
		work(StreamDeliver, l.LaneBuffer, "ebb.deliver.>"),
		work(StreamResults, 0, "ebb.results.>"),
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
	for _, b := range []string{BucketConfig, BucketRuns, BucketState, BucketLeases} {
		if _, err := js.CreateOrUpdateStream(ctx, leaderReadKV(b, l)); err != nil {
			return fmt.Errorf("provisioning KV bucket %s: %w", b, err)
		}
	}
	// Kept values only feed plans: any replica may answer.
	values := jetstream.KeyValueConfig{Bucket: BucketValues, Storage: l.Storage, Replicas: l.Replicas, History: 1}
	if _, err := js.CreateOrUpdateKeyValue(ctx, values); err != nil {
		return fmt.Errorf("provisioning KV bucket %s: %w", BucketValues, err)
	}
	for _, b := range []string{ObjectSnapshots, ObjectPayloads} {
		cfg := jetstream.ObjectStoreConfig{Bucket: b, Storage: l.Storage, Replicas: l.Replicas}
		if _, err := js.CreateOrUpdateObjectStore(ctx, cfg); err != nil {
			return fmt.Errorf("provisioning object store %s: %w", b, err)
		}
	}
	return nil
}
