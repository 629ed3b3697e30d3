package admin

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
)

// Log field names of the admin API, beside libs/logging's.
const (
	fieldKind   = "kind"
	fieldName   = "name"
	fieldAction = "action"
	fieldAddr   = "addr"
	fieldAuth   = "auth"
	fieldPanic  = "panic"
	fieldStack  = "stack"
)

// invalid marks err as the caller's fault: InvalidArgument.
func invalid(err error) error { return status.Error(codes.InvalidArgument, err.Error()) }

// toStatus maps an error to the status the caller sees.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, config.ErrNotFound), errors.Is(err, run.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, run.ErrActive), errors.Is(err, run.ErrNotActive):
		code = codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
