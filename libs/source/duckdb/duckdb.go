// Package duckdb reads models from a DuckDB database file.
//
// A DuckDB file may be opened read-write by one process only, and within a
// process every user of a file must share one database handle. Open and DB
// therefore share handles through a registry keyed by absolute path, so
// services running in one process (and the demo's seeder) can all use the
// same file.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/ebb-etl/ebb/libs/source"
)

// Source reads models from one DuckDB file.
type Source struct {
	db      *sql.DB
	release func()
	// schema holds the warehouse diff engine's tables (config field
	// "snapshot_schema").
	schema string
}

var _ source.Source = (*Source)(nil)

// Open opens the database file cfg["path"], read-only when cfg["read_only"]
// is true. If the process already has the file open read-write, the source
// shares that handle.
//
// Models cannot reach the host's files (read_text, read_csv, ATTACH, COPY
// ... TO, installing extensions) unless cfg["allow_external_access"] is
// true: DuckDB's enable_external_access is off for the database, which
// it refuses to switch on again while it runs. Without it, anyone who
// may write a model could read /etc/passwd or the server's secrets
// through `ebb sync plan`.
func Open(ctx context.Context, cfg map[string]any) (*Source, error) {
	path, ok := cfg["path"].(string)
	if !ok || path == "" {
		return nil, errors.New(`duckdb source: config field "path" is required and must be a string`)
	}
	schema, err := source.SnapshotSchema(cfg)
	if err != nil {
		return nil, fmt.Errorf("duckdb source: %w", err)
	}
	readOnly, err := boolField(cfg, "read_only")
	if err != nil {
		return nil, err
	}
	external, err := boolField(cfg, "allow_external_access")
	if err != nil {
		return nil, err
	}
	db, release, err := acquire(path, readOnly, external)
	if err != nil {
		return nil, fmt.Errorf("duckdb source: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		release()
		return nil, fmt.Errorf("duckdb source: opening %s: %w", path, err)
	}
	return &Source{db: db, release: sync.OnceFunc(release), schema: schema}, nil
}

// boolField reads an optional boolean config field.
func boolField(cfg map[string]any, name string) (bool, error) {
	v, ok := cfg[name]
	if !ok || v == nil {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf(`duckdb source: config field %q must be a boolean, not %T`, name, v)
	}
	return b, nil
}

// DB returns the process's shared read-write handle on the database file at
// path, opening it if needed, with external access off. Call release when
// done; the file is closed when its last user releases it.
func DB(path string) (db *sql.DB, release func(), err error) {
	db, release, err = acquire(path, false, false)
	if err != nil {
		return nil, nil, err
	}
	return db, sync.OnceFunc(release), nil
}

// Close releases the source's share of the database handle.
func (s *Source) Close() error {
	s.release()
	return nil
}

// registry holds the open database files of the process.
var registry = struct {
	sync.Mutex
	files map[string]*file
}{files: map[string]*file{}}

type file struct {
	db       *sql.DB
	readOnly bool
	external bool // enable_external_access
	users    int
}

func acquire(path string, readOnly, external bool) (*sql.DB, func(), error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("resolving path %s: %w", path, err)
	}
	registry.Lock()
	defer registry.Unlock()
	f, ok := registry.files[abs]
	if ok && f.readOnly && !readOnly {
		return nil, nil, fmt.Errorf("%s is already open read-only in this process", abs)
	}
	if ok && f.external != external {
		// One handle per file and process, and the setting is the
		// handle's: two sources of one file must agree on it.
		return nil, nil, fmt.Errorf("%s is already open in this process with allow_external_access %v", abs, f.external)
	}
	if !ok {
		dsn := abs + "?enable_external_access=" + fmt.Sprint(external)
		if readOnly {
			dsn += "&access_mode=read_only"
		}
		c, err := duckdbdriver.NewConnector(dsn, initConn)
		if err != nil {
			return nil, nil, fmt.Errorf("opening %s: %w", abs, err)
		}
		f = &file{db: sql.OpenDB(c), readOnly: readOnly, external: external}
		registry.files[abs] = f
	}
	f.users++
	return f.db, func() {
		registry.Lock()
		defer registry.Unlock()
		if f.users--; f.users == 0 {
			delete(registry.files, abs)
			_ = f.db.Close() // also closes the connector
		}
	}, nil
}

// initConn fixes the session time zone, which the text form of TIMESTAMPTZ
// (in keys and row hashes) depends on.
func initConn(execer driver.ExecerContext) error {
	_, err := execer.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
	return err
}
