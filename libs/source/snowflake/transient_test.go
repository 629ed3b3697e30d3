package snowflake

import (
	"fmt"
	"testing"

	sf "github.com/snowflakedb/gosnowflake"
	"github.com/stretchr/testify/require"
)

func TestIsTransient(t *testing.T) {
	s := &Source{}
	timeout := &sf.SnowflakeError{Number: 630, SQLState: "57014",
		Message: "Statement reached its statement or warehouse timeout of 60 second(s) and was canceled."}
	require.True(t, s.IsTransient(fmt.Errorf("running model: %w", timeout)))
	require.True(t, s.IsTransient(&sf.SnowflakeError{Number: 625, SQLState: "57014"}))
	require.False(t, s.IsTransient(&sf.SnowflakeError{Number: 2003, SQLState: "02000", Message: "Object 'T' does not exist"}))
	require.False(t, s.IsTransient(fmt.Errorf("plain")))
}
