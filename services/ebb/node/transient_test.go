package node_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
)

// flakyModel makes the model's query time out (SQLSTATE 57014, as a
// statement_timeout does) on the calls numbered in failOn: a sequence
// counts the calls, and nextval survives the failed statement.
func flakyModel(p *pg, failOn string) {
	p.exec(`CREATE SEQUENCE $S.calls`)
	p.exec(`CREATE FUNCTION $S.flaky() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
		BEGIN
			IF nextval('$S.calls') IN (` + failOn + `) THEN
				RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014';
			END IF;
			RETURN 1;
		END $$`)
}

// A warehouse that times out is retried: the diff starts over, the
// extraction resumes, every row is sent once, and the snapshot commits
// whole. Under both engines.
func TestWarehouseTimeoutsAreRetried(t *testing.T) {
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) {
			p := newPG(t)
			seedCustomers(p, 500)
			// Call 1 is the diff's, 2 its retry, 3 the extraction's, 4 its retry.
			flakyModel(p, "1, 3")
			hook, url := sink(t)
			e := startEnv(t)
			f := pipelineConfig(p, config.ModeMirror, url)
			f.Syncs[0].Engine = engine
			f.Syncs[0].Model.SQL = "SELECT c.region, c.id, c.name, c.score, c.note, c.attrs, c.updated_at FROM " +
				p.schema + ".customers c CROSS JOIN (SELECT " + p.schema + ".flaky() AS ok) f"
			e.apply(f)
			r := e.runSync("customers")
			require.Equal(t, run.Succeeded, r.State, r.Error)
			require.Equal(t, string(engine), r.Engine)
			require.GreaterOrEqual(t, p.count("SELECT last_value FROM $S.calls"), 4, "both stages retried")
			require.Equal(t, map[record.Op]int{record.OpUpsert: 500}, opsOf(hook.Records(), r.ID))
			require.Equal(t, modelRows(p), withoutTimestamps(hook.State()))

			// The next run finds nothing to send: the snapshot committed whole.
			r2 := e.runSync("customers")
			require.Equal(t, run.Succeeded, r2.State, r2.Error)
			require.Empty(t, opsOf(hook.Records(), r2.ID))
		})
	}
}

// A warehouse that keeps timing out fails the run after
// source.TransientAttempts tries, with the warehouse's message, and
// commits nothing.
func TestWarehouseTimingOutFailsAfterRetries(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 10)
	flakyModel(p, "1, 2, 3, 4, 5, 6")
	hook, url := sink(t)
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Model.SQL = "SELECT c.* FROM " + p.schema + ".customers c CROSS JOIN (SELECT " + p.schema + ".flaky() AS ok) f"
	e.apply(f)
	r := e.runSync("customers")
	require.Equal(t, run.Failed, r.State)
	require.Contains(t, r.Error, "statement timeout")
	require.Equal(t, 5, p.count("SELECT last_value FROM $S.calls"))
	require.Empty(t, hook.Records())
}
