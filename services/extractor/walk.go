package extractor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/metrics"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// checkpoint is the extractor's progress in a run, in the state bucket.
type checkpoint struct {
	// Pass indexes the run's passes (see passesOf).
	Pass int `json:"pass"`
	// Seq is the number of the next batch; it runs on across passes.
	Seq int `json:"seq"`
	// Done counts the pass's change-set entries in published batches.
	Done int64 `json:"done"`
	// End, when above Done, fixes batch Seq to entries [Done, End) of the
	// pass: it is saved before the batch is published, so a resumed
	// extraction publishes the same entries under the same message id.
	End int64 `json:"end,omitempty"`
	// After is the last key of the pass's published batches: the scan of
	// model rows resumes after it.
	After record.Key `json:"after,omitempty"`
	// Extracted counts the records published for sending.
	Extracted int64 `json:"extracted"`
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

// pass is one walk over the change set, taking some of its entries.
type pass struct {
	takes func(record.Change) bool
	// readsRows: some of its entries need the model's rows.
	readsRows bool
	// waitsForDeletes: it starts once the run's deletes all have results.
	waitsForDeletes bool
}

// passesOf returns the walks a run's extraction makes: one over the whole
// change set, or, for a run with deletes and other changes, the deletes
// first and the rest once they have reached the destination.
func passesOf(r *run.Run) []pass {
	rows := r.Planned.Adds+r.Planned.Changes > 0
	if r.Planned.Deletes > 0 && rows {
		return []pass{
			{takes: func(c record.Change) bool { return c == record.Deleted }},
			{takes: func(c record.Change) bool { return c != record.Deleted }, readsRows: true, waitsForDeletes: true},
		}
	}
	return []pass{{takes: func(record.Change) bool { return true }, readsRows: rows}}
}

// walker walks one pass, pairing its entries with model rows and cutting
// them into batches.
type walker struct {
	svc    *service
	run    *run.Run
	cp     *checkpoint
	pass   pass
	budget int // bytes a batch is cut at

	changes *snapshot.Reader
	has     bool // changes is on an entry of the pass not handled yet

	batch   *record.BatchWriter
	inBatch int64 // entries in the current batch
	sends   int64 // of which records to send
	lastKey record.Key

	// out publishes finished batches, in order, while the scan fills the
	// next one.
	out *shipper
}

var errDone = errors.New("change set exhausted")

func (w *walker) walk(ctx context.Context, src source.Source) error {
	changes, err := snapshot.OpenLocal(ctx, w.svc.Plane.Snapshots, w.run.ChangeSet, snapshot.ChangesPayload)
	if err != nil {
		return err
	}
	defer changes.Close()
	w.changes = changes
	w.out = w.startShipper(ctx)
	defer w.out.close()
	if err := w.next(); err != nil {
		return err
	}
	for i := int64(0); w.has && i < w.cp.Done; i++ {
		if err := w.next(); err != nil {
			return err
		}
	}
	w.startBatch()
	if w.has && w.pass.readsRows {
		err := w.read(ctx, src, func(key record.Key, row map[string]any) error {
			return w.row(ctx, key, row)
		})
		if err != nil && !errors.Is(err, errDone) {
			var stop *stopError
			if errors.As(err, &stop) {
				return stop.err
			}
			return &sourceError{source.MarkTransient(src, fmt.Errorf("reading rows: %w", err))}
		}
	}
	// Whatever is left has no row: deletes, or rows gone since the diff.
	for w.has {
		if err := w.entry(ctx, nil); err != nil {
			return err
		}
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	return w.out.close()
}

// next moves to the next entry the pass takes.
func (w *walker) next() error {
	for {
		ok, err := w.changes.Next()
		if err != nil || !ok {
			w.has = false
			return err
		}
		if w.pass.takes(record.Change(w.changes.Value()[0])) {
			w.has = true
			return nil
		}
	}
}

// Fetching rows by key pays when they are few against the model: for a
// table model each chunk of keys is an index lookup, where a scan reads
// and decodes every row up to the last changed one.
const (
	maxFetchKeys = 100_000 // at most this many rows to read
	fetchShare   = 20      // and the model has 20 rows or more for each
	fetchChunk   = 5_000   // keys per query
)

// read hands fn the model's rows the pass needs, after the checkpoint, in
// key order: fetched by key when the run changed few rows of a large
// model and the source can, else scanned.
func (w *walker) read(ctx context.Context, src source.Source, fn source.RowFunc) error {
	fetcher, ok := src.(source.KeyFetcher)
	if !ok || !fetcher.FetchesRows() || !w.fewRows() {
		return w.scan(ctx, src, fn)
	}
	keys, err := w.rowKeys(ctx)
	if err != nil {
		return err
	}
	if keys == nil {
		return w.scan(ctx, src, fn) // a key with a NULL part: only a scan finds its row
	}
	w.svc.Log.Debug().Str(logging.FieldSync, w.run.Sync).Str(logging.FieldRun, w.run.ID).Int("rows", len(keys)).
		Msg("fetching the changed rows by key")
	model := source.Model{SQL: w.run.Spec.Model.SQL, PrimaryKey: w.run.Spec.Model.PrimaryKey}
	for len(keys) > 0 {
		n := min(len(keys), fetchChunk)
		if err := fetcher.FetchRows(ctx, model, keys[:n], fn); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// fewRows reports whether the run's rows to read are few enough against
// the model's to fetch them by key. The warehouse engine already reads
// only changed rows, joined with its change table.
func (w *walker) fewRows() bool {
	r := w.run
	n := r.Planned.Adds + r.Planned.Changes
	return r.Engine != string(config.EngineWarehouse) && n <= maxFetchKeys && n*fetchShare <= r.ModelRows
}

// rowKeys reads the keys of the pass's entries after the checkpoint from
// a second reader of the change set; nil if one has a NULL part.
func (w *walker) rowKeys(ctx context.Context) ([]record.Key, error) {
	changes, err := snapshot.Open(ctx, w.svc.Plane.Snapshots, w.run.ChangeSet, snapshot.ChangesPayload)
	if err != nil {
		return nil, err
	}
	defer changes.Close()
	keys := []record.Key{}
	var seen int64
	for {
		ok, err := changes.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return keys, nil
		}
		c := record.Change(changes.Value()[0])
		if !w.pass.takes(c) {
			continue
		}
		if seen++; seen <= w.cp.Done || c == record.Deleted {
			continue // published already, or has no row
		}
		if changes.Key().HasNull() {
			return nil, nil
		}
		keys = append(keys, bytes.Clone(changes.Key()))
	}
}

// scan reads the model's rows after the checkpoint, in key order. A run
// of the warehouse engine reads only the changed rows: the model joined
// with the run's change table, so unchanged rows never leave the
// warehouse.
func (w *walker) scan(ctx context.Context, src source.Source, fn source.RowFunc) error {
	r := w.run
	model := source.Model{SQL: r.Spec.Model.SQL, PrimaryKey: r.Spec.Model.PrimaryKey}
	if r.Engine != string(config.EngineWarehouse) {
		return src.ScanRows(ctx, model, w.cp.After, fn)
	}
	wh, ok := src.(source.Warehouse)
	if !ok {
		return fmt.Errorf("the run diffed with the warehouse engine, which source %q does not have", r.Spec.Source)
	}
	tag, err := warehouse.Tag(ctx, w.svc.Plane.State)
	if err != nil {
		return err
	}
	joined, err := wh.ChangedModel(ctx, model, warehouse.RunTables(tag, r.Sync, r.ID).Changes)
	if err != nil {
		return err
	}
	return wh.ScanRows(ctx, joined, w.cp.After, fn)
}

// stopError carries an error of the extraction itself (not of the
// warehouse) out of a row callback.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// row handles one model row: entries before it have no row; an entry with
// its key gets it.
func (w *walker) row(ctx context.Context, key record.Key, row map[string]any) error {
	for w.has && record.Compare(w.changes.Key(), key) < 0 {
		if err := w.entry(ctx, nil); err != nil {
			return &stopError{err}
		}
	}
	if !w.has {
		return errDone
	}
	if record.Compare(w.changes.Key(), key) == 0 {
		if err := w.entry(ctx, row); err != nil {
			return &stopError{err}
		}
	}
	return nil
}

// entry adds the current change-set entry, with its row (nil if none), to
// the batch, and publishes the batch when it is full.
func (w *walker) entry(ctx context.Context, row map[string]any) error {
	rec, err := w.record(row)
	if err != nil {
		return err
	}
	data, err := w.batch.Encode(rec)
	if err != nil {
		return err
	}
	if limit := w.run.Spec.RecordLimit(); int64(len(data)) > limit {
		rec.Data, rec.Final = nil, record.Failed
		rec.Error = fmt.Sprintf("record %s is %s as JSON, above the sync's max_record_bytes (%s); it was not sent",
			rec.KeyEnc, mib(int64(len(data))), mib(limit))
		if data, err = w.batch.Encode(rec); err != nil {
			return err
		}
	}
	if w.inBatch > 0 && !w.fixed() && w.batch.Len()+len(data) > w.budget {
		if err := w.flush(ctx); err != nil {
			return err
		}
		if data, err = w.batch.Encode(rec); err != nil { // flush started a new writer
			return err
		}
	}
	w.batch.AddEncoded(data)
	w.inBatch++
	if rec.Sendable() {
		w.sends++
	}
	w.lastKey = rec.KeyEnc
	if err := w.next(); err != nil {
		return err
	}
	if w.full() {
		return w.flush(ctx)
	}
	return nil
}

// record makes the current entry's record: a delete, the row to send, or
// a final result for a row gone since the diff.
func (w *walker) record(row map[string]any) (record.Record, error) {
	key := record.Key(bytes.Clone(w.changes.Key()))
	change := record.Change(w.changes.Value()[0])
	pk := w.run.Spec.Model.PrimaryKey
	obj, err := key.Object(pk)
	if err != nil {
		return record.Record{}, err
	}
	rec := record.Record{Op: diff.Op(w.run.Spec.Mode, change), Change: change, KeyEnc: key, Key: obj}
	switch {
	case change == record.Deleted:
	case row == nil:
		rec.Final = record.Vanished
		rec.Error = "row left the model between diff and extraction; the next run decides again"
	default:
		for _, c := range pk {
			if v, ok := row[c]; ok {
				obj[c] = v // the typed value, not the text the key was ordered by
			}
		}
		rec.Data = row
	}
	return rec, nil
}

// fixed reports whether the checkpoint fixed the current batch's entries.
func (w *walker) fixed() bool { return w.cp.End > w.cp.Done }

// full reports whether the current batch is complete.
func (w *walker) full() bool {
	if w.fixed() {
		return w.inBatch >= w.cp.End-w.cp.Done
	}
	return w.inBatch >= int64(w.run.BatchSize) || w.batch.Len() >= w.budget
}

func (w *walker) startBatch() {
	w.batch = record.NewBatchWriter(record.Batch{Sync: w.run.Sync, RunID: w.run.ID, Seq: w.cp.Seq})
	w.inBatch, w.sends = 0, 0
}

// fullWait is how long the extractor waits for room in the sync's buffer
// before it hands the run back.
const fullWait = time.Second

// flush hands the current batch to the shipper and starts the next. The
// checkpoint moves on at once; what is saved moves on only as batches are
// published, so a run resumed after a failure starts from the first batch
// not published.
func (w *walker) flush(ctx context.Context) error {
	if w.inBatch == 0 {
		return nil
	}
	fix := !w.fixed()
	if fix {
		w.cp.End = w.cp.Done + w.inBatch
	}
	err := w.out.send(ctx, shipment{cp: *w.cp, saveFirst: fix, data: w.batch.Bytes(), entries: w.inBatch, sends: w.sends})
	if err != nil {
		return err
	}
	w.cp.Seq++
	w.cp.Done, w.cp.End = w.cp.End, 0
	w.cp.After = w.lastKey
	w.cp.Extracted += w.sends
	w.startBatch()
	return nil
}

// shipment is a finished batch on its way to the stream.
type shipment struct {
	cp        checkpoint // as of the batch: Seq is its number, End fixes it
	saveFirst bool       // save cp before publishing (a resumed batch is fixed already)
	data      []byte
	entries   int64
	sends     int64 // entries to send, the others final
}

// shipper publishes a pass's batches in order on its own goroutine, so
// the round trips of each batch (its checkpoint saved, its publish
// acknowledged, the run's state read) overlap the scan of the next
// instead of stopping it: they were half a first load's extraction time.
// It holds one batch at most, and stops at its first error, which the
// walker gets from its next send or from close.
type shipper struct {
	batches chan shipment
	result  chan error // the goroutine's end: nil, or its error
	closed  bool
	err     error
}

func (w *walker) startShipper(ctx context.Context) *shipper {
	sh := &shipper{batches: make(chan shipment, 1), result: make(chan error, 1)}
	go func() {
		for b := range sh.batches {
			if err := w.ship(ctx, b); err != nil {
				sh.result <- err
				return
			}
		}
		sh.result <- nil
	}()
	return sh
}

// send queues a batch, waiting while one is already queued.
func (sh *shipper) send(ctx context.Context, b shipment) error {
	if sh.closed {
		return sh.err
	}
	select {
	case sh.batches <- b:
		return nil
	case err := <-sh.result:
		sh.closed, sh.err = true, err
		close(sh.batches)
		if err == nil {
			err = errors.New("extraction: the shipper stopped early") // cannot happen: it stops on errors only
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close waits for the queued batches to be published and returns the
// first error; it may be called again.
func (sh *shipper) close() error {
	if !sh.closed {
		sh.closed = true
		close(sh.batches)
		sh.err = <-sh.result
	}
	return sh.err
}

// ship saves a batch's boundary, publishes it and checks the run is
// still extracting.
func (w *walker) ship(ctx context.Context, b shipment) error {
	if b.saveFirst {
		if err := w.svc.saveCheckpoint(ctx, w.run.ID, b.cp); err != nil {
			return err
		}
	}
	err := w.publish(ctx, b.cp.Seq, b.data)
	record.Recycle(b.data)
	if err != nil {
		return err
	}
	metrics.Records.WithLabelValues("extracted", w.run.Sync, "ok").Add(float64(b.sends))
	metrics.Records.WithLabelValues("extracted", w.run.Sync, "final").Add(float64(b.entries - b.sends))
	return w.svc.checkActive(ctx, w.run)
}

// publish publishes batch seq, waiting up to fullWait for room in the
// sync's buffer.
func (w *walker) publish(ctx context.Context, seq int, data []byte) error {
	id := record.MsgID(w.run.Sync, w.run.ID, "extract", seq, 0)
	subject := bus.Records(w.run.Sync)
	deadline := time.Now().Add(fullWait)
	wait := 20 * time.Millisecond
	for {
		err := w.svc.Plane.Bus.Publish(ctx, subject, data, id)
		if !errors.Is(err, bus.ErrFull) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("batch %d: %w", seq, errBufferFull)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 250*time.Millisecond)
	}
}

// mib formats a size in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
