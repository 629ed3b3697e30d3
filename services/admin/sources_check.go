package admin

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/grant"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// checkTimeout bounds one source's credential check: checks read metadata
// only and take seconds, but a warehouse that does not answer must not hold
// an apply.
const checkTimeout = 30 * time.Second

// CheckSource implements AdminService: the grants the source's syncs need.
func (s *server) CheckSource(ctx context.Context, req *adminv1.CheckSourceRequest) (*adminv1.CheckSourceResponse, error) {
	if s.d.OpenSource == nil {
		return nil, status.Error(codes.Unimplemented, "this admin server cannot reach warehouses: run it in the ebb binary")
	}
	src, err := s.d.Configs.Source(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	f, err := s.d.Configs.Load(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	findings, err := s.checkSource(ctx, src, f.Syncs)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &adminv1.CheckSourceResponse{Findings: findings}, nil
}

// SourceSetupSQL implements AdminService.
func (s *server) SourceSetupSQL(_ context.Context, req *adminv1.SourceSetupSQLRequest) (*adminv1.SourceSetupSQLResponse, error) {
	sql, err := grant.Setup(req.GetType(), grant.Options{})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &adminv1.SourceSetupSQLResponse{Sql: sql}, nil
}

// checkAppliedSources checks the sources an apply creates or updates,
// against the desired syncs. A source that cannot connect is an error;
// missing grants are findings, which the apply reports as warnings. Without
// OpenSource (an admin server without drivers) nothing is checked.
func (s *server) checkAppliedSources(ctx context.Context, desired config.File, changes []config.Change) ([]*adminv1.SourceCheck, error) {
	if s.d.OpenSource == nil {
		return nil, nil
	}
	var checks []*adminv1.SourceCheck
	for _, c := range changes {
		if c.Kind != config.KindSource || c.Action == config.ActionDelete {
			continue
		}
		v, ok := find(desired, c.Kind, c.Name)
		if !ok {
			continue
		}
		findings, err := s.checkSource(ctx, v.(config.Source), desired.Syncs)
		if err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		checks = append(checks, &adminv1.SourceCheck{Source: c.Name, Findings: findings})
	}
	return checks, nil
}

// checkSource opens a source and checks its grants for the models of the
// syncs reading it. The error is a source that cannot be opened (or
// checked) at all; it names the source.
func (s *server) checkSource(ctx context.Context, src config.Source, syncs []config.Sync) ([]*adminv1.SourceFinding, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	wh, err := s.d.OpenSource(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("cannot connect: %w", err)
	}
	defer wh.Close()
	checker, ok := wh.(source.Checker)
	if !ok {
		return []*adminv1.SourceFinding{{
			Check: "connect", Ok: true,
			Detail: fmt.Sprintf("%s sources have no grants to check", src.Type),
		}}, nil
	}
	req := source.CheckRequest{}
	if schema, err := source.SnapshotSchema(src.Config); err == nil {
		req.SnapshotSchema = schema
	}
	for _, sy := range syncs {
		if sy.Source == src.Name {
			req.Models = append(req.Models, source.CheckModel{Sync: sy.Name, SQL: sy.Model.SQL})
		}
	}
	findings, err := checker.Check(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", src.Name, err)
	}
	out := make([]*adminv1.SourceFinding, len(findings))
	for i, f := range findings {
		out[i] = &adminv1.SourceFinding{Check: f.Check, Ok: f.OK, Detail: f.Detail, Fix: f.Fix}
	}
	return out, nil
}
