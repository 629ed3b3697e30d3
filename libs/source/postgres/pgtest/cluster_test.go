package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
)

// A throwaway cluster keeps its data across a crash and a clean restart.
func TestClusterRestarts(t *testing.T) {
	c := pgtest.StartCluster(t)
	ctx := context.Background()
	conn, err := c.Connect(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
	require.NoError(t, err)

	require.NoError(t, c.Restart("immediate", 100*time.Millisecond))
	_, err = conn.Exec(ctx, "SELECT 1")
	require.Error(t, err, "the old connection died with the server")
	require.NoError(t, c.Restart("fast", 0))

	conn, err = c.Connect(ctx)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 2, n)
}
