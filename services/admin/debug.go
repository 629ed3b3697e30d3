package admin

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebb-etl/ebb/libs/debug"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// Live debugger limits: a watch lasts watchTTL unless renewed every
// watchRenew, so delivery stops publishing soon after the last watcher
// leaves; a watcher whose stream does not take an event for sendTimeout is
// dropped, and so is one that let watchBuffer events pile up.
const (
	watchTTL    = 15 * time.Second
	watchRenew  = 5 * time.Second
	sendTimeout = 5 * time.Second
	watchBuffer = 1024
)

// Debug implements AdminService.
func (s *server) Debug(req *adminv1.DebugRequest, stream grpc.ServerStreamingServer[adminv1.DebugResponse]) error {
	ctx := stream.Context()
	if _, err := s.d.Configs.Sync(ctx, req.GetSync()); err != nil {
		return toStatus(err)
	}
	events := make(chan *nats.Msg, watchBuffer)
	sub, err := s.d.JS.Conn().ChanSubscribe(debug.Subject(req.GetSync()), events)
	if err != nil {
		return toStatus(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := debug.Watch(ctx, s.d.State, req.GetSync(), watchTTL); err != nil {
		return toStatus(err)
	}
	renew := time.NewTicker(watchRenew)
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C:
			if err := debug.Watch(ctx, s.d.State, req.GetSync(), watchTTL); err != nil {
				return toStatus(err)
			}
		case msg := <-events:
			if dropped, _ := sub.Dropped(); dropped > 0 {
				return tooSlow()
			}
			ev, ok := decodeEvent(msg.Data, req)
			if !ok {
				continue
			}
			if err := sendWithin(ctx, stream, ev); err != nil {
				return err
			}
		}
	}
}

func tooSlow() error {
	return status.Error(codes.ResourceExhausted,
		"watcher too slow: events were dropped to keep the sync at full speed; narrow it with --status or --key")
}

// sendWithin sends ev, dropping the watcher if its stream does not take it
// within sendTimeout (a client that stopped reading).
func sendWithin(ctx context.Context, stream grpc.ServerStreamingServer[adminv1.DebugResponse], ev *adminv1.DebugResponse) error {
	done := make(chan error, 1)
	go func() { done <- stream.Send(ev) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	case <-time.After(sendTimeout):
		return tooSlow()
	}
}

// decodeEvent turns a published event into the API's, if it passes the
// request's filters.
func decodeEvent(data []byte, req *adminv1.DebugRequest) (*adminv1.DebugResponse, bool) {
	var ev debug.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, false
	}
	if (req.GetStatus() != "" && ev.Status != req.GetStatus()) || (req.GetKey() != "" && ev.KeyText != req.GetKey()) {
		return nil, false
	}
	payload, _ := structpb.NewStruct(ev.Payload)
	return &adminv1.DebugResponse{
		Time: timestamppb.New(ev.Time), Sync: ev.Sync, RunId: ev.RunID, Destination: ev.Destination,
		Key: ev.KeyText, Op: ev.Op, Status: ev.Status, Error: ev.Error, Payload: payload,
		Request: ev.Request, LatencyMs: ev.LatencyMS, Attempts: int32(ev.Attempts), Logs: ev.Logs,
	}, true
}
