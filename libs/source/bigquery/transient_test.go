package bigquery

import (
	"fmt"
	"testing"

	bq "cloud.google.com/go/bigquery"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"
)

func TestIsTransient(t *testing.T) {
	s := &Source{}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&googleapi.Error{Code: 503, Message: "backend unavailable"}, true},
		{&googleapi.Error{Code: 429, Message: "too many requests"}, true},
		{&googleapi.Error{Code: 400, Errors: []googleapi.ErrorItem{{Reason: "rateLimitExceeded"}}}, true},
		{&bq.Error{Reason: "backendError", Message: "Error encountered during execution. Retrying may solve the problem."}, true},
		{&googleapi.Error{Code: 400, Errors: []googleapi.ErrorItem{{Reason: "invalidQuery"}}}, false},
		{&googleapi.Error{Code: 403, Errors: []googleapi.ErrorItem{{Reason: "accessDenied"}}}, false},
		{&googleapi.Error{Code: 403, Errors: []googleapi.ErrorItem{{Reason: "quotaExceeded"}}}, false},
	} {
		// As the source returns them: wrapped with what it was doing.
		require.Equal(t, c.want, s.IsTransient(s.apiError("running model", c.err)), "%v", c.err)
		require.Equal(t, c.want, s.IsTransient(fmt.Errorf("reading rows: %w", c.err)), "%v", c.err)
	}
}
