// Package convert translates between the admin API's messages and the
// libs types they carry: config resources, plan changes and runs. Empty
// values become nil both ways, so a resource compares equal however it
// travelled.
package convert

import (
	"fmt"
	"google.golang.org/protobuf/types/known/durationpb"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func toStruct(what string, cfg map[string]any) (*structpb.Struct, error) {
	if len(cfg) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", what, err)
	}
	return s, nil
}

func fromStruct(s *structpb.Struct) map[string]any {
	if len(s.GetFields()) == 0 {
		return nil
	}
	return s.AsMap()
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// SourceToPB converts a source.
func SourceToPB(s config.Source) (*adminv1.Source, error) {
	cfg, err := toStruct("source "+s.Name, s.Config)
	return &adminv1.Source{Name: s.Name, Type: s.Type, Config: cfg}, err
}

// SourceFromPB converts a source.
func SourceFromPB(s *adminv1.Source) config.Source {
	return config.Source{Name: s.GetName(), Type: s.GetType(), Config: fromStruct(s.GetConfig())}
}

// DestinationToPB converts a destination.
func DestinationToPB(d config.Destination) (*adminv1.Destination, error) {
	cfg, err := toStruct("destination "+d.Name, d.Config)
	return &adminv1.Destination{Name: d.Name, Type: d.Type, Config: cfg}, err
}

// DestinationFromPB converts a destination.
func DestinationFromPB(d *adminv1.Destination) config.Destination {
	return config.Destination{Name: d.GetName(), Type: d.GetType(), Config: fromStruct(d.GetConfig())}
}

// SyncToPB converts a sync.
func SyncToPB(s config.Sync) (*adminv1.Sync, error) {
	out := &adminv1.Sync{
		Name:        s.Name,
		Source:      s.Source,
		Destination: s.Destination,
		Model:       &adminv1.Model{Sql: s.Model.SQL, PrimaryKey: nilIfEmpty(s.Model.PrimaryKey)},
		Mode:        string(s.Mode),
		Schedule:    s.Schedule,
		Engine:      string(s.Engine),

		MaxRecordBytes:  s.MaxRecordBytes,
		MaxRunDuration:  s.MaxRunDuration,
		QuarantineAfter: int32(s.QuarantineAfter),
		KeepValues:      s.KeepValues,
		Safety: &adminv1.Safety{MaxDeleteShare: s.Safety.MaxDeleteShare, MaxChangeShare: s.Safety.MaxChangeShare,
			MinRows: s.Safety.MinRows},
	}
	for _, a := range s.Alerts {
		out.Alerts = append(out.Alerts, &adminv1.Alert{On: a.On, Share: a.Share, After: a.After, Webhook: a.Webhook, Slack: a.Slack})
	}
	for i, m := range s.Mapping {
		pm := &adminv1.Mapping{From: m.From, To: m.To, Template: m.Template, Cast: m.Cast, Format: m.Format,
			OmitNull: m.OmitNull, Required: m.Required}
		var err error
		if pm.Const, err = value(m.Const); err != nil {
			return nil, fmt.Errorf("sync %s: mapping[%d].const: %w", s.Name, i, err)
		}
		if pm.Default, err = value(m.Default); err != nil {
			return nil, fmt.Errorf("sync %s: mapping[%d].default: %w", s.Name, i, err)
		}
		out.Mapping = append(out.Mapping, pm)
	}
	if t := s.Transformation; t != nil {
		out.Transformation = &adminv1.Transformation{File: t.File, Code: t.Code, Version: t.Version,
			TimeoutMs: int32(t.TimeoutMS), MaxOutputBytes: int32(t.MaxOutputBytes)}
	}
	return out, nil
}

// value converts an optional JSON-like value.
func value(v any) (*structpb.Value, error) {
	if v == nil {
		return nil, nil
	}
	return structpb.NewValue(v)
}

// SyncFromPB converts a sync.
func SyncFromPB(s *adminv1.Sync) config.Sync {
	out := config.Sync{
		Name:        s.GetName(),
		Source:      s.GetSource(),
		Destination: s.GetDestination(),
		Model:       config.Model{SQL: s.GetModel().GetSql(), PrimaryKey: nilIfEmpty(s.GetModel().GetPrimaryKey())},
		Mode:        config.Mode(s.GetMode()),
		Schedule:    s.GetSchedule(),
		Engine:      config.Engine(s.GetEngine()),

		MaxRecordBytes:  s.GetMaxRecordBytes(),
		MaxRunDuration:  s.GetMaxRunDuration(),
		QuarantineAfter: int(s.GetQuarantineAfter()),
		KeepValues:      s.GetKeepValues(),
	}
	if sf := s.GetSafety(); sf != nil {
		out.Safety = config.Safety{MaxDeleteShare: sf.MaxDeleteShare, MaxChangeShare: sf.MaxChangeShare, MinRows: sf.MinRows}
	}
	for _, a := range s.GetAlerts() {
		out.Alerts = append(out.Alerts, config.Alert{On: a.GetOn(), Share: a.GetShare(), After: a.GetAfter(),
			Webhook: a.GetWebhook(), Slack: a.GetSlack()})
	}
	for _, m := range s.GetMapping() {
		cm := config.Mapping{From: m.GetFrom(), To: m.GetTo(), Template: m.GetTemplate(), Cast: m.GetCast(),
			Format: m.GetFormat(), OmitNull: m.GetOmitNull(), Required: m.GetRequired()}
		if m.GetConst() != nil {
			cm.Const = m.GetConst().AsInterface()
		}
		if m.GetDefault() != nil {
			cm.Default = m.GetDefault().AsInterface()
		}
		out.Mapping = append(out.Mapping, cm)
	}
	if t := s.GetTransformation(); t != nil {
		out.Transformation = &config.Transformation{File: t.GetFile(), Code: t.GetCode(),
			TimeoutMS: int(t.GetTimeoutMs()), MaxOutputBytes: int(t.GetMaxOutputBytes())}
		// The version is always the server's hash of the code it stores.
		out.Transformation.Normalize()
	}
	return out
}

// FileToApply converts a whole config file into an Apply request.
func FileToApply(f config.File, dryRun bool) (*adminv1.ApplyRequest, error) {
	req := &adminv1.ApplyRequest{DryRun: dryRun}
	for _, s := range f.Sources {
		ps, err := SourceToPB(s)
		if err != nil {
			return nil, err
		}
		req.Sources = append(req.Sources, ps)
	}
	for _, d := range f.Destinations {
		pd, err := DestinationToPB(d)
		if err != nil {
			return nil, err
		}
		req.Destinations = append(req.Destinations, pd)
	}
	for _, s := range f.Syncs {
		ps, err := SyncToPB(s)
		if err != nil {
			return nil, err
		}
		req.Syncs = append(req.Syncs, ps)
	}
	return req, nil
}

// FileFromApply converts an Apply request's resources into a config file.
func FileFromApply(req *adminv1.ApplyRequest) config.File {
	var f config.File
	for _, s := range req.GetSources() {
		f.Sources = append(f.Sources, SourceFromPB(s))
	}
	for _, d := range req.GetDestinations() {
		f.Destinations = append(f.Destinations, DestinationFromPB(d))
	}
	for _, s := range req.GetSyncs() {
		f.Syncs = append(f.Syncs, SyncFromPB(s))
	}
	return f
}

// ChangeToPB converts a plan change.
func ChangeToPB(c config.Change) *adminv1.Change {
	return &adminv1.Change{Kind: string(c.Kind), Name: c.Name, Action: string(c.Action), Fields: nilIfEmpty(c.Fields)}
}

// ChangeFromPB converts a plan change.
func ChangeFromPB(c *adminv1.Change) config.Change {
	return config.Change{
		Kind:   config.Kind(c.GetKind()),
		Name:   c.GetName(),
		Action: config.Action(c.GetAction()),
		Fields: nilIfEmpty(c.GetFields()),
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeOf(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func outcomeToPB(o run.Outcome) *adminv1.Outcome {
	return &adminv1.Outcome{Delivered: o.Delivered, Failed: o.Failed, Vanished: o.Vanished, Filtered: o.Filtered}
}

func outcomeFromPB(o *adminv1.Outcome) run.Outcome {
	return run.Outcome{Delivered: o.GetDelivered(), Failed: o.GetFailed(), Vanished: o.GetVanished(), Filtered: o.GetFiltered()}
}

// RunToPB converts a run.
func RunToPB(r *run.Run) *adminv1.Run {
	return &adminv1.Run{
		Id:                    r.ID,
		Sync:                  r.Sync,
		State:                 string(r.State),
		Trigger:               r.Trigger,
		Error:                 r.Error,
		ModelRows:             r.ModelRows,
		Planned:               &adminv1.Planned{Adds: r.Planned.Adds, Changes: r.Planned.Changes, Deletes: r.Planned.Deletes},
		Adds:                  outcomeToPB(r.Adds),
		Changes:               outcomeToPB(r.Changes),
		Deletes:               outcomeToPB(r.Deletes),
		Extracted:             r.Extracted,
		Quarantined:           r.Quarantined,
		PausedFrom:            string(r.PausedFrom),
		SafetyStop:            r.SafetyStop,
		Retries:               r.Retries,
		PreviousRows:          r.PreviousRows,
		DryRun:                r.DryRun,
		Engine:                r.Engine,
		TypeChanges:           r.TypeChanges,
		Phases:                phasesToPB(r.Durations()),
		Fanout:                r.Fanout,
		TransformationVersion: transformationVersion(r),
		ApprovedAt:            timestamp(r.ApprovedAt),
		CreatedAt:             timestamp(r.CreatedAt),
		StartedAt:             timestamp(r.StartedAt),
		FinishedAt:            timestamp(r.FinishedAt),
	}
}

// RunFromPB converts a run, for its helpers such as Summary.
func RunFromPB(r *adminv1.Run) *run.Run {
	p := r.GetPlanned()
	return &run.Run{
		ID:          r.GetId(),
		Sync:        r.GetSync(),
		State:       run.State(r.GetState()),
		Trigger:     r.GetTrigger(),
		Error:       r.GetError(),
		ModelRows:   r.GetModelRows(),
		Planned:     run.Planned{Adds: p.GetAdds(), Changes: p.GetChanges(), Deletes: p.GetDeletes()},
		Adds:        outcomeFromPB(r.GetAdds()),
		Changes:     outcomeFromPB(r.GetChanges()),
		Deletes:     outcomeFromPB(r.GetDeletes()),
		Extracted:   r.GetExtracted(),
		Quarantined: r.GetQuarantined(),
		Fanout:      r.GetFanout(),
		Engine:      r.GetEngine(),
		SafetyStop:  r.GetSafetyStop(),
		TypeChanges: r.GetTypeChanges(),
		CreatedAt:   timeOf(r.GetCreatedAt()),
		StartedAt:   timeOf(r.GetStartedAt()),
		FinishedAt:  timeOf(r.GetFinishedAt()),
	}
}

func phasesToPB(phases []run.PhaseDuration) []*adminv1.PhaseDuration {
	out := make([]*adminv1.PhaseDuration, len(phases))
	for i, p := range phases {
		out[i] = &adminv1.PhaseDuration{Phase: string(p.Phase), Duration: durationpb.New(p.Duration)}
	}
	return out
}

func transformationVersion(r *run.Run) string {
	if t := r.Spec.Transformation; t != nil {
		return t.Version
	}
	return ""
}
