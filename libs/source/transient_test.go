package source_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source"
)

func TestIsTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, true},
		{&pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, true},
		{&pgconn.PgError{Code: "08006", Message: "connection failure"}, true},
		{&pgconn.PgError{Code: "42P01", Message: `relation "t" does not exist`}, false},
		{&pgconn.PgError{Code: "42501", Message: "permission denied for table t"}, false},
		{fmt.Errorf("reading rows: %w", syscall.ECONNRESET), true},
		{context.DeadlineExceeded, true},
		{errors.New("model has 2 duplicate primary keys"), false},
	} {
		require.Equal(t, c.want, source.IsTransient(fmt.Errorf("running model: %w", c.err)), "%v", c.err)
	}
	marked := source.MarkTransient(nil, &pgconn.PgError{Code: "57014"})
	var te *source.TransientError
	require.ErrorAs(t, marked, &te)
	require.Nil(t, source.MarkTransient(nil, nil))
}
