// Package extractor is the service that reads the rows of a run's change set
// from the warehouse and publishes them in batches. Batch i covers entries
// [i*n, (i+1)*n) of the change set, so batches are the same however often a
// run is resumed; each published batch is checkpointed, and a restart
// resumes after the last checkpoint.
package extractor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/metrics"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// Deps is what the extractor needs.
type Deps struct {
	Plane      *plane.Plane
	Log        zerolog.Logger
	OpenSource func(context.Context, config.Source) (source.Source, error)
	// Workers is how many runs are extracted at once.
	Workers int
}

type service struct{ Deps }

// Run consumes ebb.run.diffed until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 2
	}
	d.Log = d.Log.With().Str(logging.FieldService, "extractor").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamRuns, jetstream.ConsumerConfig{
		Durable:       "extractor",
		FilterSubject: bus.RunDiffed("*"),
		MaxAckPending: 64,
	})
	if err != nil {
		return err
	}
	s := &service{d}
	return bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
}

func (s *service) handle(ctx context.Context, msg jetstream.Msg) error {
	var ev run.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		s.Log.Error().Err(err).Msg("dropping malformed run event")
		return nil
	}
	log := s.Log.With().Str(logging.FieldSync, ev.Sync).Str(logging.FieldRun, ev.RunID).Logger()
	r, err := s.Plane.Runs.Get(ctx, ev.Sync, ev.RunID)
	if errors.Is(err, run.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.State != run.Extracting {
		return nil // extracted already, or over
	}
	err = s.extract(ctx, log, r)
	if errors.Is(err, errStopped) {
		log.Info().Msg("extraction stopped at a batch boundary: the run is paused or over")
		return nil // a resume announces the run again
	}
	if err == nil || ctx.Err() != nil {
		return err
	}
	var srcErr *sourceError
	if errors.As(err, &srcErr) {
		var transient *source.TransientError
		if errors.As(err, &transient) && bus.Delivered(msg) < source.TransientAttempts {
			// Handed back: the redelivery resumes from the checkpoint.
			log.Warn().Err(err).Uint64("attempt", bus.Delivered(msg)).Msg("the warehouse failed transiently; extraction will be retried")
			return err
		}
		// The warehouse refused: the run fails with its message.
		log.Error().Err(err).Msg("extraction failed")
		_, uerr := s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
			if r.State.Terminal() {
				return run.ErrSkip
			}
			r.State, r.Error = run.Failed, err.Error()
			return nil
		})
		return uerr
	}
	return err
}

// sourceError marks a failure of the warehouse, as opposed to one of NATS.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// checkpoint is the extractor's progress in a run, in the state bucket.
type checkpoint struct {
	NextSeq   int        `json:"next_seq"`
	LastKey   record.Key `json:"last_key,omitempty"`
	Extracted int64      `json:"extracted"`
}

func checkpointKey(runID string) string { return "checkpoint." + runID + ".extract" }

func (s *service) loadCheckpoint(ctx context.Context, runID string) (checkpoint, error) {
	var cp checkpoint
	e, err := s.Plane.State.Get(ctx, checkpointKey(runID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("reading checkpoint: %w", err)
	}
	return cp, json.Unmarshal(e.Value(), &cp)
}

func (s *service) saveCheckpoint(ctx context.Context, runID string, cp checkpoint) error {
	data, _ := json.Marshal(cp)
	if _, err := s.Plane.State.Put(ctx, checkpointKey(runID), data); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

func (s *service) extract(ctx context.Context, log zerolog.Logger, r *run.Run) error {
	cp, err := s.loadCheckpoint(ctx, r.ID)
	if err != nil {
		return err
	}
	srcCfg, err := s.Plane.Configs.Source(ctx, r.Spec.Source)
	if err != nil {
		return &sourceError{err}
	}
	src, err := s.OpenSource(ctx, srcCfg)
	if err != nil {
		return &sourceError{source.MarkTransient(nil, fmt.Errorf("opening source %q: %w", srcCfg.Name, err))}
	}
	defer src.Close()
	changes, err := snapshot.OpenLocal(ctx, s.Plane.Snapshots, r.ChangeSet, snapshot.ChangesPayload)
	if err != nil {
		return err
	}
	defer changes.Close()
	if cp.NextSeq > 0 {
		log.Info().Int("from_batch", cp.NextSeq).Msg("resuming extraction from checkpoint")
	} else {
		log.Info().Msg("extracting")
	}
	b := &batcher{svc: s, run: r, cp: cp, changes: changes}
	if err := b.skipDone(); err != nil {
		return err
	}
	if err := b.walk(ctx, src); err != nil {
		return err
	}
	_, err = s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
		if !r.Advance(run.Extracting, run.Delivering) {
			return run.ErrSkip
		}
		r.Batches = b.cp.NextSeq
		r.Extracted = b.cp.Extracted
		return nil
	})
	if err == nil {
		_ = s.Plane.State.Delete(ctx, checkpointKey(r.ID))
		log.Info().Int("batches", b.cp.NextSeq).Int64("records", b.cp.Extracted).Msg("extracted")
	}
	return err
}

// batcher walks the change set in order, pairing entries with model rows.
type batcher struct {
	svc     *service
	run     *run.Run
	cp      checkpoint
	changes *snapshot.Reader

	has     bool // changes is on an entry not yet handled
	inBatch int  // entries of the current batch handled so far
	records []record.Record
	missing []record.Result // planned rows no longer in the model
	lastKey record.Key
}

// next advances the change set.
func (b *batcher) next() error {
	var err error
	b.has, err = b.changes.Next()
	return err
}

// skipDone moves past the entries of batches already published.
func (b *batcher) skipDone() error {
	if err := b.next(); err != nil {
		return err
	}
	for i := 0; b.has && i < b.cp.NextSeq*b.run.BatchSize; i++ {
		if err := b.next(); err != nil {
			return err
		}
	}
	return nil
}

var errDone = errors.New("change set exhausted")

func (b *batcher) walk(ctx context.Context, src source.Source) error {
	if b.has && b.needsRows() {
		err := b.scan(ctx, src, func(key record.Key, row map[string]any) error {
			return b.row(ctx, key, row)
		})
		if err != nil && !errors.Is(err, errDone) {
			var pubErr *publishError
			if errors.As(err, &pubErr) {
				return pubErr.err
			}
			return &sourceError{source.MarkTransient(src, fmt.Errorf("reading rows: %w", err))}
		}
	}
	// Whatever is left has no row: deletes, or rows gone since the diff.
	for b.has {
		if err := b.entry(ctx, nil); err != nil {
			return err
		}
	}
	return b.flush(ctx)
}

// scan reads the model's rows after the checkpoint, in key order. A run
// of the warehouse engine reads only the changed rows: the model joined
// with the run's change table, so unchanged rows never leave the
// warehouse.
func (b *batcher) scan(ctx context.Context, src source.Source, fn source.RowFunc) error {
	model := source.Model{SQL: b.run.Spec.Model.SQL, PrimaryKey: b.run.Spec.Model.PrimaryKey}
	if b.run.Engine != string(config.EngineWarehouse) {
		return src.ScanRows(ctx, model, b.cp.LastKey, fn)
	}
	w, ok := src.(source.Warehouse)
	if !ok {
		return fmt.Errorf("the run diffed with the warehouse engine, which source %q does not have", b.run.Spec.Source)
	}
	tag, err := warehouse.Tag(ctx, b.svc.Plane.State)
	if err != nil {
		return err
	}
	changes := warehouse.RunTables(tag, b.run.Sync, b.run.ID).Changes
	joined, err := w.ChangedModel(ctx, model, changes)
	if err != nil {
		return err
	}
	return w.ScanRows(ctx, joined, b.cp.LastKey, fn)
}

// needsRows reports whether any change needs a model row. A mirror run with
// only deletes skips reading the model.
func (b *batcher) needsRows() bool {
	return b.run.Planned.Adds+b.run.Planned.Changes > 0
}

// publishError marks a failure to publish, inside a row callback.
type publishError struct{ err error }

func (e *publishError) Error() string { return e.err.Error() }

// row handles one model row: entries before it have no row; an entry with
// its key gets it.
func (b *batcher) row(ctx context.Context, key record.Key, row map[string]any) error {
	for b.has && record.Compare(b.changes.Key(), key) < 0 {
		if err := b.entry(ctx, nil); err != nil {
			return &publishError{err}
		}
	}
	if !b.has {
		return errDone
	}
	if record.Compare(b.changes.Key(), key) == 0 {
		if err := b.entry(ctx, row); err != nil {
			return &publishError{err}
		}
	}
	return nil
}

// entry handles the current change-set entry, with its row (nil if none).
func (b *batcher) entry(ctx context.Context, row map[string]any) error {
	key := record.Key(bytes.Clone(b.changes.Key()))
	change := record.Change(b.changes.Value()[0])
	op := diff.Op(b.run.Spec.Mode, change)
	switch {
	case change == record.Deleted:
		obj, err := key.Object(b.run.Spec.Model.PrimaryKey)
		if err != nil {
			return err
		}
		b.records = append(b.records, record.Record{Op: op, Change: change, KeyEnc: key, Key: obj})
	case row == nil:
		b.missing = append(b.missing, record.Result{KeyEnc: key, Op: op, Change: change, Status: record.Vanished,
			Error: "row left the model between diff and extraction; the next run decides again"})
	default:
		obj, err := key.Object(b.run.Spec.Model.PrimaryKey)
		if err != nil {
			return err
		}
		for _, c := range b.run.Spec.Model.PrimaryKey {
			if v, ok := row[c]; ok {
				obj[c] = v // the typed value, not the text the key was ordered by
			}
		}
		b.records = append(b.records, record.Record{Op: op, Change: change, KeyEnc: key, Key: obj, Data: row})
	}
	b.lastKey = key
	b.inBatch++
	if err := b.next(); err != nil {
		return err
	}
	if b.inBatch == b.run.BatchSize {
		return b.flush(ctx)
	}
	return nil
}

// flush publishes the current batch and checkpoints it.
func (b *batcher) flush(ctx context.Context) error {
	if b.inBatch == 0 {
		return nil
	}
	seq := b.cp.NextSeq
	js := b.svc.Plane.JS
	if len(b.records) > 0 {
		data, err := json.Marshal(record.Batch{Sync: b.run.Sync, RunID: b.run.ID, Seq: seq, Records: b.records})
		if err != nil {
			return fmt.Errorf("encoding batch %d: %w", seq, err)
		}
		id := record.MsgID(b.run.Sync, b.run.ID, "extract", seq, 0)
		if err := bus.Publish(ctx, js, bus.Records(b.run.Sync), data, id); err != nil {
			return err
		}
	}
	if len(b.missing) > 0 {
		rb := record.ResultBatch{Sync: b.run.Sync, RunID: b.run.ID, Seq: seq, Partition: record.ExtractorSlot(b.run.Partitions), Results: b.missing}
		data, _ := json.Marshal(rb)
		id := record.MsgID(b.run.Sync, b.run.ID, "results", seq, record.ExtractorSlot(b.run.Partitions))
		if err := bus.Publish(ctx, js, bus.Results(b.run.Sync), data, id); err != nil {
			return err
		}
	}
	metrics.Records.WithLabelValues("extracted", b.run.Sync, "ok").Add(float64(len(b.records)))
	metrics.Records.WithLabelValues("extracted", b.run.Sync, "vanished").Add(float64(len(b.missing)))
	b.cp.NextSeq++
	b.cp.Extracted += int64(len(b.records))
	b.cp.LastKey = b.lastKey
	if err := b.svc.saveCheckpoint(ctx, b.run.ID, b.cp); err != nil {
		return err
	}
	b.records, b.missing, b.inBatch = nil, nil, 0
	return b.checkActive(ctx)
}

// errShuttingDown hands the run back at a batch boundary when this copy
// is shutting down: another copy (or this one, restarted) resumes from the
// checkpoint.
var errShuttingDown = errors.New("shutting down: extraction handed back at its checkpoint")

// errStopped ends an extraction at a batch boundary because the run was
// paused, cancelled or failed; the checkpoint is saved, so a resume goes
// on from the next batch.
var errStopped = errors.New("run paused or over")

// checkActive reads the run's state after each batch: one read per batch
// of thousands of records is cheap, and a pause stops extraction within a
// batch.
func (b *batcher) checkActive(ctx context.Context) error {
	if bus.Stopping(ctx) {
		return errShuttingDown
	}
	r, err := b.svc.Plane.Runs.Get(ctx, b.run.Sync, b.run.ID)
	if err != nil {
		return err
	}
	if r.State != run.Extracting {
		return errStopped
	}
	return nil
}
