package delivery

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/debug"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/metrics"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
)

// errRunOver abandons a batch whose run was cancelled or failed while it
// was being delivered: nothing more of it is sent, and its results do not
// matter, since the run commits nothing.
var errRunOver = errors.New("the run is over")

func (w *worker) handle(ctx context.Context, msg jetstream.Msg) error {
	body, err := w.plane.Bus.Body(ctx, msg)
	if err != nil {
		return err
	}
	// Data stays JSON until the destination is known: one that takes it
	// as is (a webhook) writes it into its request unparsed.
	b, err := record.DecodeBatch(body, true)
	if err != nil {
		w.log.Error().Err(err).Msg("dropping malformed delivery batch")
		return nil
	}
	decision, flags, err := w.gate.CheckRun(ctx, b.Sync, b.RunID)
	switch {
	case err != nil:
		return err
	case decision == run.Drop:
		return nil // cancelled or failed: nothing more is sent
	case decision == run.Hold:
		return run.ErrHeld
	case flags.DryRun:
		if err := b.DecodeData(); err != nil {
			w.log.Error().Err(err).Msg("dropping malformed delivery batch")
			return nil
		}
		return w.recordPlan(ctx, b)
	}
	// retry_for counts from this batch's first attempt here, not from when
	// it entered the stream: after a backlog or a pause it gets its tries.
	bp := &batchPass{deadline: time.Now().Add(w.opts.RetryFor)}
	client, err := w.destination(ctx, b.Sync, b.RunID, bp)
	if err != nil {
		return w.failRun(ctx, b.Sync, b.RunID, err)
	}
	if !takesRaw(client) {
		if err := b.DecodeData(); err != nil {
			w.log.Error().Err(err).Msg("dropping malformed delivery batch")
			return nil
		}
	}
	results, err := w.deliver(ctx, client, b, bp)
	if errors.Is(err, errRunOver) {
		return nil
	}
	if err != nil {
		return err // shutting down: the batch is redelivered
	}
	countResults(b.Sync, results)
	if flags.KeepValues {
		// Kept values only feed plans: failing to keep them must not hand
		// the batch back, which would send delivered records again.
		if err := w.keepValues(ctx, b, results); err != nil {
			w.log.Warn().Err(err).Str(logging.FieldSync, b.Sync).Msg("keeping the values sent; plans may show older ones")
		}
	}
	return w.publishResults(ctx, record.ResultBatch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: b.Partition,
		Results: results, Retries: bp.retries})
}

// deliver sends a batch's records, batch_size at a time, and returns one
// result per record in order; records decided before delivery (Final) get
// theirs without being sent.
func (w *worker) deliver(ctx context.Context, client destination.Destination, b record.Batch, bp *batchPass) ([]record.Result, error) {
	results := make([]record.Result, len(b.Records))
	send := make([]record.Record, 0, len(b.Records))
	at := make([]int, 0, len(b.Records)) // send[i] is b.Records[at[i]]
	for i, rec := range b.Records {
		if rec.Sendable() {
			send, at = append(send, rec), append(at, i)
			continue
		}
		results[i] = result(rec, rec.Final, rec.Error)
	}
	for i := 0; i < len(send); i += w.opts.BatchSize {
		chunk := send[i:min(i+w.opts.BatchSize, len(send))]
		id := fmt.Sprintf("%s/%d", record.MsgID(b.Sync, b.RunID, "deliver", b.Seq, b.Partition), i/w.opts.BatchSize)
		res, err := w.write(ctx, client, b, id, chunk, bp)
		if err != nil {
			return nil, err
		}
		for j, r := range res {
			results[at[i+j]] = r
		}
	}
	return results, nil
}

// publishResults publishes a batch's results. They follow requests the
// destination took, so a full stream is waited for, not handed back.
func (w *worker) publishResults(ctx context.Context, rb record.ResultBatch) error {
	data, err := record.EncodeResults(rb)
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	id := record.MsgID(rb.Sync, rb.RunID, "results", rb.Seq, rb.Partition)
	err = w.plane.Bus.PublishWaiting(ctx, bus.Results(rb.Sync), data, id)
	if bus.IsPermanent(err) {
		return w.failRun(ctx, rb.Sync, rb.RunID, err)
	}
	return err
}

// failRun fails a run that cannot go on (its destination cannot be
// opened, its results cannot be published) with the reason, and acks the
// batch.
func (w *worker) failRun(ctx context.Context, sync, runID string, reason error) error {
	w.log.Error().Err(reason).Str(logging.FieldSync, sync).Str(logging.FieldRun, runID).Msg("failing the run")
	_, err := w.plane.Runs.Fail(ctx, sync, runID, reason.Error())
	return err
}

// destination returns the open destination, trying to open it as a
// request would be retried: up to max_attempts within retry_for, at once
// failing for an error that opening again cannot fix.
func (w *worker) destination(ctx context.Context, sync, runID string, bp *batchPass) (destination.Destination, error) {
	for attempt := 1; ; attempt++ {
		client, err := w.conn.get(ctx)
		if err == nil {
			return client, nil
		}
		wait := backoff(w.opts.RetryBackoff, attempt)
		if destination.IsPermanent(err) || attempt >= w.opts.MaxAttempts || time.Now().Add(wait).After(bp.deadline) {
			return nil, err
		}
		w.log.Warn().Err(err).Str(logging.FieldSync, sync).Str(logging.FieldRun, runID).Int(logging.FieldAttempt, attempt).
			Dur("retry_in", wait).Msg("the destination cannot be opened; retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// keepValues remembers the payloads delivered, for plans of syncs with
// keep_values. Results are in record order.
func (w *worker) keepValues(ctx context.Context, b record.Batch, results []record.Result) error {
	for i, rec := range b.Records {
		if results[i].Status != record.Delivered || !rec.Sendable() {
			continue
		}
		if err := w.values.Keep(ctx, b.Sync, rec); err != nil {
			return err
		}
	}
	return nil
}

// recordPlan handles a dry run's batch: what would be sent goes to the
// plans stream, and every record counts as delivered (or as decided before
// delivery), so the run completes as a real one would. The destination is
// not called.
func (w *worker) recordPlan(ctx context.Context, b record.Batch) error {
	if err := w.publishPlan(ctx, b, b.Records, record.MsgID(b.Sync, b.RunID, "plan", b.Seq, b.Partition)); err != nil {
		return err
	}
	results := make([]record.Result, len(b.Records))
	for i, rec := range b.Records {
		results[i] = result(rec, record.Delivered, "")
		if !rec.Sendable() {
			results[i] = result(rec, rec.Final, rec.Error)
		}
	}
	return w.publishResults(ctx, record.ResultBatch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: b.Partition, Results: results})
}

// publishPlan publishes what a dry run would send. The plans stream is read
// as it is, with no payload store behind it: a batch larger than a message
// is split in halves under ids id.0, id.1, ...; a record too large alone
// is shown without its payload.
func (w *worker) publishPlan(ctx context.Context, b record.Batch, recs []record.Record, id string) error {
	out := b
	out.Records = recs
	data, err := record.EncodeBatch(out)
	if err != nil {
		return fmt.Errorf("encoding plan: %w", err)
	}
	if len(data) > w.plane.Bus.MaxInline() {
		if len(recs) == 1 {
			rec := recs[0]
			rec.Data = map[string]any{"ebb_plan_note": fmt.Sprintf("a payload of %d bytes, too large to show in a plan", len(data))}
			return w.publishPlan(ctx, b, []record.Record{rec}, id)
		}
		half := len(recs) / 2
		if err := w.publishPlan(ctx, b, recs[:half], id+".0"); err != nil {
			return err
		}
		return w.publishPlan(ctx, b, recs[half:], id+".1")
	}
	return w.plane.Bus.PublishWaiting(ctx, bus.Plan(b.Sync, b.RunID), data, id)
}

// batchPass is one delivery of a stream batch: the deadline of its retries
// and how many requests it retried.
type batchPass struct {
	deadline time.Time
	retries  int
	// latency and attempts describe the last request, for the debugger.
	latency  time.Duration
	attempts int
}

// observe shows a request's records to the live debugger, when someone
// watches the sync.
func (w *worker) observe(ctx context.Context, b record.Batch, id string, recs []record.Record, results []record.Result, bp *batchPass) {
	if w.debug == nil || !w.debug.Watched(ctx, b.Sync) {
		return
	}
	now := time.Now().UTC()
	for i, rec := range recs {
		w.debug.Publish(debug.Event{
			Time: now, Sync: b.Sync, RunID: b.RunID, Destination: w.dest.Name,
			Key: rec.Key, KeyText: rec.KeyEnc.String(), Op: string(rec.Op), Status: string(results[i].Status), Error: results[i].Error,
			Payload: rec.Payload(), Request: id, LatencyMS: float64(bp.latency.Microseconds()) / 1000, Attempts: bp.attempts,
		})
	}
}

// write delivers records and returns one final result per record. A batch
// rejected as a whole is split in halves until the records at fault are
// alone, so one bad record fails by itself and the rest are delivered. Each
// request is retried on its own (see send), so a retry never resends records
// another request already delivered. It returns an error only when ctx ends
// or the run is over.
func (w *worker) write(ctx context.Context, client destination.Destination, b record.Batch, id string, recs []record.Record, bp *batchPass) ([]record.Result, error) {
	errs, err := w.send(ctx, client, destination.Batch{ID: id, Sync: b.Sync, RunID: b.RunID, Records: recs}, bp)
	switch {
	case err == nil:
		results := make([]record.Result, len(recs))
		for i, rec := range recs {
			results[i] = result(rec, record.Delivered, "")
			if i < len(errs) && errs[i] != nil {
				results[i] = result(rec, record.Failed, errs[i].Error())
			}
		}
		w.observe(ctx, b, id, recs, results, bp)
		return results, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, errRunOver):
		return nil, err
	case !destination.IsPermanent(err) || len(recs) == 1:
		results := failAll(recs, err.Error())
		w.observe(ctx, b, id, recs, results, bp)
		return results, nil
	}
	half := len(recs) / 2
	left, err := w.write(ctx, client, b, id+".0", recs[:half], bp)
	if err != nil {
		return nil, err
	}
	right, err := w.write(ctx, client, b, id+".1", recs[half:], bp)
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// send makes one request, paced by the destination's limiter, and retries
// transient failures with exponential backoff and jitter (or the
// destination's Retry-After) until max_attempts or the retry deadline. A
// permanent rejection is returned at once; so is a transient error that
// ran out of tries. Every attempt first registers itself in flight and
// checks that its run is still live (errRunOver otherwise).
func (w *worker) send(ctx context.Context, client destination.Destination, batch destination.Batch, bp *batchPass) ([]error, error) {
	dest := w.dest.Name
	for attempt := 1; ; attempt++ {
		waitStart := time.Now()
		if err := w.limit.acquire(ctx); err != nil {
			return nil, err
		}
		sent := time.Now()
		metrics.RateLimitWait.WithLabelValues(dest).Add(sent.Sub(waitStart).Seconds())
		errs, err := w.attempt(ctx, client, batch)
		w.limit.release()
		if errors.Is(err, errRunOver) {
			return nil, err
		}
		bp.latency, bp.attempts = time.Since(sent), attempt
		metrics.RequestSeconds.WithLabelValues(dest).Observe(bp.latency.Seconds())
		if err == nil {
			w.limit.succeeded(sent)
			metrics.Requests.WithLabelValues(dest, "ok").Inc()
			return errs, nil
		}
		if destination.IsPermanent(err) || ctx.Err() != nil {
			metrics.Requests.WithLabelValues(dest, "rejected").Inc()
			return nil, err
		}
		wait := destination.RetryAfter(err)
		if wait <= 0 {
			wait = backoff(w.opts.RetryBackoff, attempt)
		}
		if destination.IsThrottled(err) {
			metrics.Requests.WithLabelValues(dest, "throttled").Inc()
			w.limit.throttled(destination.RetryAfter(err))
		} else {
			metrics.Requests.WithLabelValues(dest, "retry").Inc()
		}
		if attempt >= w.opts.MaxAttempts || time.Now().Add(wait).After(bp.deadline) {
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		metrics.Retries.WithLabelValues(dest).Inc()
		bp.retries++
		w.log.Debug().Err(err).Str(logging.FieldSync, batch.Sync).Str(logging.FieldRun, batch.RunID).
			Int(logging.FieldAttempt, attempt).Dur("retry_in", wait).Msg("request failed; retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// attempt makes one request of a run that is still live, registered as in
// flight for its whole duration (see run.Drained).
func (w *worker) attempt(ctx context.Context, client destination.Destination, batch destination.Batch) ([]error, error) {
	w.members.begin(batch.RunID)
	defer w.members.end(batch.RunID)
	decision, _, err := w.gate.CheckRun(ctx, batch.Sync, batch.RunID)
	if err != nil {
		return nil, err
	}
	if decision == run.Drop {
		return nil, errRunOver
	}
	return client.Write(destination.WithPacer(ctx, w.limit.pacer()), batch)
}

// backoff is exponential with jitter: about first, 2×first, 4×first, ...
// up to a minute.
func backoff(first time.Duration, attempt int) time.Duration {
	ceiling := min(first<<min(attempt-1, 16), time.Minute)
	return ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)+1))
}

// countResults adds a batch's final results to ebb_records_total.
func countResults(sync string, results []record.Result) {
	var ok, failed float64
	for _, r := range results {
		if r.Status == record.Delivered {
			ok++
		} else {
			failed++
		}
	}
	metrics.Records.WithLabelValues("delivered", sync, "ok").Add(ok)
	metrics.Records.WithLabelValues("delivered", sync, "failed").Add(failed)
}

func result(rec record.Record, s record.Status, reason string) record.Result {
	return record.Result{KeyEnc: rec.KeyEnc, Op: rec.Op, Change: rec.Change, Status: s, Error: record.Truncate(reason),
		PayloadHash: payloadHash(rec), Extra: rec.Extra}
}

// payloadHash fingerprints a payload: FNV-1a of its JSON, whose map keys
// are sorted (encoding/json sorts them, and RawData is what it wrote), so
// the same payload always hashes the same.
func payloadHash(rec record.Record) string {
	b := []byte(rec.RawData)
	if b == nil {
		if rec.Data == nil {
			return ""
		}
		// The JSON the transformer wrote, so both paths hash alike.
		var j record.JSONBuffer
		if err := j.Map(rec.Data); err != nil {
			return ""
		}
		b = j.Buf
	}
	h := fnv.New64a()
	h.Write(b)
	return strconv.FormatUint(h.Sum64(), 16)
}

// takesRaw reports whether the destination takes record data as JSON.
func takesRaw(client destination.Destination) bool {
	r, ok := client.(destination.RawTaker)
	return ok && r.TakesRawData()
}

func failAll(recs []record.Record, reason string) []record.Result {
	out := make([]record.Result, len(recs))
	for i, rec := range recs {
		out[i] = result(rec, record.Failed, reason)
	}
	return out
}
