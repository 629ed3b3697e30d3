package snowflake_test

import (
	"context"
	"crypto/md5"
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
)

// TestWarehouseStatements runs the warehouse engine's kinds of statements
// through the driver: the snapshot schema named as Snowflake resolves it,
// created once, transient tables, BINARY values bound and read back, row
// counts per statement, and the schema's tables by their lower-case names.
func TestWarehouseStatements(t *testing.T) {
	ctx := context.Background()
	s, e := sftest.Env(t)
	cfg := maps.Clone(e.Config)
	cfg["snapshot_schema"] = "snaps"
	src := open(t, cfg)
	require.Equal(t, `EBB.SNAPS."snap_x"`, src.Table("snap_x"))
	require.NoError(t, src.ProbeSchema(ctx))
	require.NoError(t, src.ProbeSchema(ctx), "an existing schema is used as it is")

	snap := src.Table("snap_x")
	counts, err := src.Exec(ctx,
		sqlStmt("DROP TABLE IF EXISTS "+snap),
		sqlStmt(src.Dialect().CreateTable+" "+snap+" AS SELECT CAST(1 AS BIGINT) AS k1, 'a' AS k2, MD5_BINARY('x') AS h"),
		sqlStmt("INSERT INTO "+snap+" VALUES ("+src.Param(1)+", "+src.Param(2)+", "+src.Param(3)+"), ("+
			src.Param(4)+", "+src.Param(5)+", "+src.Param(6)+")",
			int64(2), "b", []byte{0, 1, 0xff}, int64(3), "c", []byte("abc")))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 0, 2}, counts)

	sum := md5.Sum([]byte("x"))
	var got []string
	require.NoError(t, src.ScanKeys(ctx, "SELECT k1, k2, h FROM "+snap+" ORDER BY k1", 2, func(key record.Key, h []byte) error {
		got = append(got, key.String()+"="+string(h))
		return nil
	}))
	require.Equal(t, []string{"1,a=" + string(sum[:]), "2,b=\x00\x01\xff", "3,c=abc"}, got)

	n, err := src.QueryInt(ctx, "SELECT count(*) FROM "+snap)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	counts, err = src.Exec(ctx, sqlStmt("DELETE FROM "+snap+" WHERE k1 > "+src.Param(1), int64(1)))
	require.NoError(t, err)
	require.Equal(t, []int64{2}, counts)

	tables, err := src.Tables(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"snap_x"}, tables, "the probe's table is gone")
	var schemas int
	require.NoError(t, s.DB.QueryRow(`SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'SNAPS'`).Scan(&schemas))
	require.Equal(t, 1, schemas)
}

// TestSnapshotSchemaConfig: a quoted name keeps its case, a wrong type is
// a config error.
func TestSnapshotSchemaConfig(t *testing.T) {
	_, e := sftest.Env(t)
	cfg := maps.Clone(e.Config)
	cfg["snapshot_schema"] = `"Ebb Snaps"`
	require.Equal(t, `EBB."Ebb Snaps"."t"`, open(t, cfg).Table("t"))
	cfg["snapshot_schema"] = 7
	_, err := snowflake.Open(context.Background(), cfg)
	require.ErrorContains(t, err, `"snapshot_schema"`)
}

func sqlStmt(sql string, args ...any) source.Stmt { return source.Stmt{SQL: sql, Args: args} }
