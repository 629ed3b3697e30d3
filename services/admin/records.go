package admin

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// defaultHistoryLimit is how many events FindRecord returns by default.
const defaultHistoryLimit = 50

// FindRecord implements AdminService.
func (s *server) FindRecord(ctx context.Context, req *adminv1.FindRecordRequest) (*adminv1.FindRecordResponse, error) {
	if _, err := s.d.Configs.Sync(ctx, req.GetSync()); err != nil {
		return nil, toStatus(err)
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultHistoryLimit
	}
	events, err := run.KeyHistory(ctx, s.d.JS, req.GetSync(), req.GetKey(), limit)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &adminv1.FindRecordResponse{}
	for _, ev := range events {
		resp.Events = append(resp.Events, &adminv1.RecordEvent{RunId: ev.RunID, At: timestamppb.New(ev.At), Op: ev.Op,
			Status: ev.Status, Response: ev.Response, PayloadHash: ev.PayloadHash})
	}
	return resp, nil
}
