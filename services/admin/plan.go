package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/convert"
)

// defaultPlanLimit is how many records per operation a plan shows.
const defaultPlanLimit = 5

// PlanSync implements AdminService.
func (s *server) PlanSync(req *adminv1.PlanSyncRequest, stream grpc.ServerStreamingServer[adminv1.PlanSyncResponse]) error {
	ctx := stream.Context()
	name := req.GetSync()
	if _, err := s.d.Configs.Sync(ctx, name); err != nil {
		return toStatus(err)
	}
	r, err := run.StartDryRun(ctx, s.d.Bus, s.d.Runs, name)
	if errors.Is(err, run.ErrActive) {
		active, _ := s.d.Runs.ActiveID(ctx, name)
		return status.Errorf(codes.FailedPrecondition, "sync %q has an active run (%s); plan it when it ends", name, active)
	}
	if err != nil {
		return toStatus(err)
	}
	s.log.Info().Str(logging.FieldSync, name).Str(logging.FieldRun, r.ID).Msg("planning")
	if r, err = s.awaitRun(ctx, r); err != nil {
		return err
	}
	summary := &adminv1.PlanSummary{Run: convert.RunToPB(r), ValuesKept: r.Spec.KeepValues}
	if err := stream.Send(&adminv1.PlanSyncResponse{Item: &adminv1.PlanSyncResponse_Summary{Summary: summary}}); err != nil {
		return err
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultPlanLimit
	}
	return s.sendPlanned(ctx, r, limit, req.GetAll(), stream)
}

// awaitRun waits for a run to end; a client that goes away cancels it.
func (s *server) awaitRun(ctx context.Context, r *run.Run) (*run.Run, error) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_, _ = s.d.Runs.Cancel(context.WithoutCancel(ctx), r.ID)
			return nil, status.Error(codes.Canceled, "plan cancelled")
		case <-t.C:
		}
		got, err := s.d.Runs.Get(ctx, r.Sync, r.ID)
		if err != nil {
			return nil, toStatus(err)
		}
		if got.State.Terminal() {
			return got, nil
		}
	}
}

// sendPlanned streams the dry run's records: all of them, or for each op
// the limit smallest keys, so the same data always gives the same sample.
func (s *server) sendPlanned(ctx context.Context, r *run.Run, limit int, all bool,
	stream grpc.ServerStreamingServer[adminv1.PlanSyncResponse]) error {
	var values *run.Values
	if r.Spec.KeepValues {
		kv, err := s.d.JS.KeyValue(ctx, bus.BucketValues)
		if err != nil {
			return toStatus(err)
		}
		values = run.NewValues(kv)
	}
	send := func(rec record.Record) error {
		changes, err := fieldChanges(ctx, values, r.Sync, rec)
		if err != nil {
			return toStatus(err)
		}
		return sendPlanned(stream, rec, changes)
	}
	samples := map[record.Op][]record.Record{}
	err := readPlan(ctx, s.d.JS, r, func(rec record.Record) error {
		if all {
			return send(rec)
		}
		samples[rec.Op] = keepSmallest(samples[rec.Op], rec, limit)
		return nil
	})
	if err != nil {
		return err
	}
	for _, op := range []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete} {
		for _, rec := range samples[op] {
			if err := send(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// keepSmallest inserts rec into recs, sorted by key, keeping at most n.
func keepSmallest(recs []record.Record, rec record.Record, n int) []record.Record {
	i := len(recs)
	for i > 0 && bytes.Compare(rec.KeyEnc, recs[i-1].KeyEnc) < 0 {
		i--
	}
	if i >= n {
		return recs
	}
	recs = append(recs[:i], append([]record.Record{rec}, recs[i:]...)...)
	return recs[:min(len(recs), n)]
}

// fieldChanges compares a changed record with the payload last sent for
// its key, when the sync keeps values.
func fieldChanges(ctx context.Context, values *run.Values, sync string, rec record.Record) ([]*adminv1.FieldChange, error) {
	if values == nil || rec.Change != record.Changed || rec.Data == nil {
		return nil, nil
	}
	old, err := values.Last(ctx, sync, rec.KeyEnc)
	if err != nil || old == nil {
		return nil, err
	}
	var out []*adminv1.FieldChange
	for _, c := range run.DiffFields(old, rec.Data) {
		out = append(out, &adminv1.FieldChange{Path: c.Path, Old: fieldText(c.Old), New: fieldText(c.New)})
	}
	return out, nil
}

// fieldText is a field's value as JSON, or "" for a field that is not there.
func fieldText(v any) string {
	if v == nil {
		return ""
	}
	return jsonText(v)
}

func sendPlanned(stream grpc.ServerStreamingServer[adminv1.PlanSyncResponse], rec record.Record, changes []*adminv1.FieldChange) error {
	pr := &adminv1.PlannedRecord{Op: string(rec.Op), Change: changeName(rec.Change), Key: rec.KeyEnc.String(), Changes: changes}
	if rec.Data != nil {
		payload, err := json.Marshal(rec.Data)
		if err != nil {
			return status.Errorf(codes.Internal, "record %s: %v", pr.Key, err)
		}
		pr.Payload = string(payload)
	}
	return stream.Send(&adminv1.PlanSyncResponse{Item: &adminv1.PlanSyncResponse_Record{Record: pr}})
}

func changeName(c record.Change) string {
	switch c {
	case record.Added:
		return "added"
	case record.Deleted:
		return "deleted"
	}
	return "changed"
}

// readPlan calls fn for every record the dry run would have sent.
func readPlan(ctx context.Context, js jetstream.JetStream, r *run.Run, fn func(record.Record) error) error {
	st, err := js.Stream(ctx, bus.StreamPlans)
	if err != nil {
		return toStatus(err)
	}
	subject := bus.Plan(r.Sync, r.ID)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return toStatus(err)
	}
	left := info.State.Subjects[subject]
	if left == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return toStatus(err)
	}
	for ; left > 0; left-- {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return toStatus(fmt.Errorf("reading the plan of run %s: %w", r.ID, err))
		}
		var b record.Batch
		if err := record.Decode(msg.Data(), &b); err != nil {
			return toStatus(err)
		}
		for _, rec := range b.Records {
			if !rec.Sendable() {
				continue // decided before delivery: shown among the failures
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	return nil
}
