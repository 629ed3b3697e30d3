// Package snowflake reads models from Snowflake with the official driver,
// github.com/snowflakedb/gosnowflake.
//
// Results are requested in Snowflake's JSON format, where every cell is text:
// NUMBER comes back exactly as Snowflake printed it (never through float64)
// and large results arrive as chunks that the driver downloads a few at a
// time while rows are read, so memory stays bounded whatever the result size.
package snowflake

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/ebb-etl/ebb/libs/source"
)

// Source reads models from one Snowflake account.
type Source struct {
	db *sql.DB
	// cfg names the role, warehouse, database and schema the credential
	// check looks at.
	cfg *sf.Config
	// schema holds the warehouse diff engine's tables (config field
	// "snapshot_schema"), resolved as Snowflake resolves the identifier.
	schema string
}

var _ source.Source = (*Source)(nil)

// sessionParams are set on every session at login. Row hashes and text keys
// are computed from the text form of values, which must not change with the
// account's or user's defaults: full fractional seconds, UTC for
// TIMESTAMP_LTZ, hex binary. GO_QUERY_RESULT_FORMAT asks for JSON results,
// whose cells are text that this package converts exactly.
var sessionParams = map[string]string{
	"GO_QUERY_RESULT_FORMAT":      "json",
	"TIMEZONE":                    "UTC",
	"TIMESTAMP_NTZ_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF9",
	"TIMESTAMP_LTZ_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF9 TZH:TZM",
	"TIMESTAMP_TZ_OUTPUT_FORMAT":  "YYYY-MM-DD HH24:MI:SS.FF9 TZH:TZM",
	"TIME_OUTPUT_FORMAT":          "HH24:MI:SS.FF9",
	"DATE_OUTPUT_FORMAT":          "YYYY-MM-DD",
	"BINARY_OUTPUT_FORMAT":        "HEX",
	"GEOGRAPHY_OUTPUT_FORMAT":     "GeoJSON",
	"GEOMETRY_OUTPUT_FORMAT":      "GeoJSON",
}

// Open connects to Snowflake and authenticates. Config fields: account,
// user, password or private_key (PEM, PKCS#8 or PKCS#1, for key-pair JWT
// authentication), and optionally role, warehouse, database, schema,
// snapshot_schema (the warehouse diff engine's, in the same database), and
// host, protocol and port to reach another endpoint than the account's.
func Open(ctx context.Context, cfg map[string]any) (*Source, error) {
	c, err := driverConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("snowflake source: %w", err)
	}
	schema, err := source.SnapshotSchema(cfg)
	if err != nil {
		return nil, fmt.Errorf("snowflake source: %w", err)
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *c))
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("snowflake source: %w", connectError(c, err))
	}
	return &Source{db: db, cfg: c, schema: upperIdent(schema)}, nil
}

// Close closes the sessions.
func (s *Source) Close() error { return s.db.Close() }

// driverConfig builds the driver's config from the source config.
func driverConfig(cfg map[string]any) (*sf.Config, error) {
	var c sf.Config
	var err error
	field := func(name string, required bool) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = stringField(cfg, name, required)
		return v
	}
	c.Account = field("account", true)
	c.User = field("user", true)
	c.Password = field("password", false)
	key := field("private_key", false)
	c.Role = field("role", false)
	c.Warehouse = field("warehouse", false)
	c.Database = field("database", false)
	c.Schema = field("schema", false)
	c.Host = field("host", false)
	c.Protocol = field("protocol", false)
	if err != nil {
		return nil, err
	}
	if c.Port, err = intField(cfg, "port"); err != nil {
		return nil, err
	}
	switch {
	case c.Password != "" && key != "":
		return nil, errors.New(`config fields "password" and "private_key" are exclusive: give one`)
	case key != "":
		if c.PrivateKey, err = parseKey(key); err != nil {
			return nil, err
		}
		c.Authenticator = sf.AuthTypeJwt
	case c.Password == "":
		return nil, errors.New(`config field "password" or "private_key" is required`)
	}
	c.Params = make(map[string]*string, len(sessionParams))
	for k, v := range sessionParams {
		c.Params[k] = &v
	}
	c.Application = "ebb"
	c.DisableTelemetry = true
	// The driver retries logins and requests on its own; bound it so a
	// wrong host fails a run in seconds rather than minutes.
	c.LoginTimeout = 60 * time.Second
	c.MaxRetryCount = 3
	return &c, nil
}

func stringField(cfg map[string]any, name string, required bool) (string, error) {
	v, ok := cfg[name]
	if !ok || v == nil {
		if required {
			return "", fmt.Errorf("config field %q is required", name)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("config field %q must be a string, not %T", name, v)
	}
	if s == "" && required {
		return "", fmt.Errorf("config field %q is required", name)
	}
	return s, nil
}

// intField reads a port, which YAML gives as an int and JSON as a float64.
func intField(cfg map[string]any, name string) (int, error) {
	switch v := cfg[name].(type) {
	case nil:
		return 0, nil
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case float64:
		if v == float64(int(v)) {
			return int(v), nil
		}
	}
	return 0, fmt.Errorf("config field %q must be an integer, not %T", name, cfg[name])
}

// parseKey reads an unencrypted RSA private key in PEM form.
func parseKey(text string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New(`config field "private_key" must be a PEM-encoded RSA private key`)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// The parse error says nothing about the key's bytes.
		return nil, fmt.Errorf(`config field "private_key": %w`, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf(`config field "private_key" holds a %T key; Snowflake key-pair authentication needs RSA`, k)
	}
	return rk, nil
}

// connectError says whether connecting failed on credentials (Snowflake's
// 390xxx login codes) or on something else.
func connectError(c *sf.Config, err error) error {
	var se *sf.SnowflakeError
	if errors.As(err, &se) && se.Number >= 390000 && se.Number < 391000 {
		return fmt.Errorf("authentication failed for user %q on account %q: %w", c.User, c.Account, err)
	}
	return fmt.Errorf("connecting to account %q: %w", c.Account, err)
}
