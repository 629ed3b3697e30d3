package snowflake_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"testing"

	sf "github.com/snowflakedb/gosnowflake"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

func TestMain(m *testing.M) {
	// The driver's optional native helper library is written to a temp
	// directory and loaded, and its platform detection probes cloud
	// metadata addresses: neither has a use against a local server.
	os.Setenv("SF_DISABLE_MINICORE", "true")
	os.Setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
	// The driver logs every failed query and login on stderr; the tests
	// check those errors where they are returned.
	if err := sf.GetLogger().SetLogLevel("fatal"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func TestAcceptance(t *testing.T) {
	sourcetest.Run(t, sftest.Harness)
}

func open(t *testing.T, cfg map[string]any) *snowflake.Source {
	t.Helper()
	src, err := snowflake.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	return src
}

// TestLargeResultStreamsInChunks checks a result longer than one response
// is read chunk by chunk as rows are consumed: a scan that stops early has
// fetched only the chunks the driver prefetches, not the whole result.
func TestLargeResultStreamsInChunks(t *testing.T) {
	const rows, perChunk = 5000, 100
	s, e := sftest.Env(t, sftest.WithChunkRows(perChunk))
	sourcetest.Exec(t, e, "CREATE TABLE big AS SELECT g AS id, 'row ' || CAST(g AS VARCHAR) AS name FROM range(1, 5001) AS s(g)")
	src := open(t, e.Config)
	m := source.Model{SQL: "SELECT * FROM big", PrimaryKey: []string{"id"}}
	chunks := int64(rows/perChunk - 1) // the first rows come inline

	keys, got := sourcetest.Rows(t, src, m, nil)
	require.Len(t, keys, rows)
	require.Equal(t, map[string]any{"id": int64(rows), "name": "row 5000"}, got[rows-1])
	require.Equal(t, chunks, s.ChunkGets())

	stop := errors.New("stop")
	err := src.ScanRows(context.Background(), m, nil, func(record.Key, map[string]any) error { return stop })
	require.ErrorIs(t, err, stop)
	fetched := s.ChunkGets() - chunks
	require.LessOrEqual(t, fetched, int64(sf.MaxChunkDownloadWorkers), "an abandoned scan fetched %d of %d chunks", fetched, chunks)

	hashKeys, _ := sourcetest.Hashes(t, src, m)
	require.Equal(t, keys, hashKeys)
}

func TestWrongPasswordIsAnAuthenticationError(t *testing.T) {
	s := sftest.New(t)
	cfg := s.Config()
	cfg["password"] = "not-the-password"
	_, err := snowflake.Open(context.Background(), cfg)
	require.ErrorContains(t, err, `snowflake source: authentication failed for user "EBB" on account "ebbtest": `+
		"390100 (08004): Incorrect username or password was specified.")
	require.NotContains(t, err.Error(), "not-the-password")
	var se *sf.SnowflakeError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 390100, se.Number)
}

func TestKeyPairAuthentication(t *testing.T) {
	s := sftest.New(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	s.AddKeyUser("ebb_keys", &key.PublicKey)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	cfg := s.Config()
	delete(cfg, "password")
	cfg["user"] = "ebb_keys"
	cfg["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	cols, err := open(t, cfg).Columns(context.Background(), "SELECT 1 AS one")
	require.NoError(t, err)
	require.Equal(t, []source.Column{{Name: "one", Type: "NUMBER(38,0)", Int: true}}, cols)

	// Another key, in PKCS#1 form, is refused.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	cfg["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}))
	_, err = snowflake.Open(context.Background(), cfg)
	require.ErrorContains(t, err, `authentication failed for user "ebb_keys"`)
	require.ErrorContains(t, err, "390144")
}

func TestOpenConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, `config field "account" is required`},
		{map[string]any{"account": "a"}, `config field "user" is required`},
		{map[string]any{"account": "a", "user": "u"}, `config field "password" or "private_key" is required`},
		{map[string]any{"account": "a", "user": "u", "password": 5}, `config field "password" must be a string`},
		{map[string]any{"account": "a", "user": "u", "password": "p", "port": "x"}, `config field "port" must be an integer`},
		{map[string]any{"account": "a", "user": "u", "password": "p", "private_key": "k"}, `config fields "password" and "private_key" are exclusive`},
		{map[string]any{"account": "a", "user": "u", "private_key": "not pem"}, `config field "private_key" must be a PEM-encoded RSA private key`},
	} {
		_, err := snowflake.Open(ctx, tc.cfg)
		require.ErrorContains(t, err, "snowflake source: "+tc.want)
	}
}

func TestMissingTableIsSnowflakeMessage(t *testing.T) {
	_, e := sftest.Env(t)
	src := sourcetest.Open(t, e)
	_, err := src.Columns(context.Background(), "SELECT * FROM ebb_no_such_table")
	require.EqualError(t, err, "running model: 002003 (42S02): SQL compilation error:\n"+
		"Object 'ebb_no_such_table' does not exist or not authorized.")
	var se *sf.SnowflakeError
	require.ErrorAs(t, err, &se)
	require.NotEmpty(t, se.QueryID)
}

func TestUnrepresentableTypeNamesColumn(t *testing.T) {
	_, e := sftest.Env(t)
	src := sourcetest.Open(t, e)
	m := source.Model{SQL: "SELECT 1 AS id, INTERVAL 1 DAY AS wait", PrimaryKey: []string{"id"}}
	want := `column "wait" has Snowflake type INTERVAL, which Ebb cannot represent`
	err := src.ScanRows(context.Background(), m, nil, func(record.Key, map[string]any) error { return nil })
	require.ErrorContains(t, err, want)
	err = src.ScanHashes(context.Background(), m, func(record.Key, []byte) error { return nil })
	require.ErrorContains(t, err, want)
}

// TestSnowflakeValues reads the types the canonical suite does not cover:
// wide and negative decimals, integers beyond int64, TIME, FLOAT specials,
// OBJECT and ARRAY (printed indented by Snowflake, compacted by Ebb).
func TestSnowflakeValues(t *testing.T) {
	_, e := sftest.Env(t)
	sourcetest.Exec(t, e,
		`CREATE TABLE vals (id INTEGER, wide DECIMAL(38,10), neg DECIMAL(5,2), huge HUGEINT, t TIME,
			f DOUBLE, st STRUCT(a INTEGER, b VARCHAR), arr INTEGER[], u UUID)`,
		`INSERT INTO vals VALUES
			(1, 1234567890123456789012345678.0123456789, -0.5, 170141183460469231731687303715884105727,
			 '12:34:56.5', 'NaN', {'a': 1, 'b': 'x"y'}, [1, NULL, 3], 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
			(2, 0, 0, -1, '00:00:00', '-Infinity', NULL, [], NULL)`)
	m := source.Model{SQL: "SELECT * FROM vals", PrimaryKey: []string{"id"}}
	_, rows := sourcetest.Rows(t, sourcetest.Open(t, e), m, nil)
	require.Equal(t, map[string]any{
		"id":   int64(1),
		"wide": json.Number("1234567890123456789012345678.0123456789"),
		"neg":  json.Number("-0.50"),
		"huge": json.Number("170141183460469231731687303715884105727"),
		"t":    "12:34:56.5",
		"f":    "NaN",
		"st":   json.RawMessage(`{"a":1,"b":"x\"y"}`),
		"arr":  json.RawMessage(`[1,null,3]`),
		"u":    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	}, rows[0])
	require.Equal(t, json.Number("0.0000000000"), rows[1]["wide"])
	require.Equal(t, int64(-1), rows[1]["huge"])
	require.Equal(t, "00:00:00", rows[1]["t"])
	require.Equal(t, "-Infinity", rows[1]["f"])
	_, err := json.Marshal(rows)
	require.NoError(t, err)
}

// TestIntegerKeyBeyondInt64 checks a NUMBER(38,0) key too large for the
// key encoding fails naming the column, rather than wrapping around.
func TestIntegerKeyBeyondInt64(t *testing.T) {
	_, e := sftest.Env(t)
	src := sourcetest.Open(t, e)
	m := source.Model{SQL: "SELECT CAST('99999999999999999999' AS HUGEINT) AS id", PrimaryKey: []string{"id"}}
	err := src.ScanHashes(context.Background(), m, func(record.Key, []byte) error { return nil })
	require.ErrorContains(t, err, `key column "id": 99999999999999999999 is not a 64-bit integer`)
}
