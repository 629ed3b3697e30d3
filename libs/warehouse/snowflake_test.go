package warehouse_test

import (
	"context"
	"testing"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
)

// The engine on Snowflake, through the official driver and the local
// Snowflake server. Its Env has no Prefix: the model is in the server's
// default schema and the engine's tables in the default snapshot schema,
// EBB.EBB, a name the fixture's DuckDB statements resolve too.
func init() {
	openers["snowflake"] = func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return snowflake.Open(ctx, cfg)
	}
}

func TestEnginesAgreeSnowflake(t *testing.T) { testEnginesAgree(t, sftest.Harness(t)) }
func TestKeyErrorsSnowflake(t *testing.T)    { testKeyErrors(t, sftest.Harness(t)) }
func TestCleanSnowflake(t *testing.T)        { testClean(t, sftest.Harness(t)) }
