package warehouse_test

import (
	"context"
	"testing"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
)

// BigQuery runs the engine through the official client against the local
// server (bqtest). The fixture's snapshot schema is the Env's dataset, so
// the engine's tables sit next to the model, as in the other warehouses.
func init() {
	openers["bigquery"] = func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return bigquery.Open(ctx, cfg)
	}
}

func TestEnginesAgreeBigQuery(t *testing.T) { testEnginesAgree(t, bqtest.Env(t)) }
func TestKeyErrorsBigQuery(t *testing.T)    { testKeyErrors(t, bqtest.Env(t)) }
func TestCleanBigQuery(t *testing.T)        { testClean(t, bqtest.Env(t)) }
