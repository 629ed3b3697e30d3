package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
)

// The model of the history test: a table in the test's own Postgres whose
// every row carries a version drawn from one global sequence at each
// change, and a trigger that logs every change (insert, update, delete,
// with the row) in commit order. The log is the truth the checker compares
// the destinations' histories with.

const historySchema = `
CREATE SCHEMA hist;
CREATE SEQUENCE hist.version_seq;
CREATE TABLE hist.items (id bigint PRIMARY KEY, version bigint NOT NULL, name text NOT NULL, note text);
CREATE TABLE hist.changes (seq bigserial PRIMARY KEY, id bigint NOT NULL, op text NOT NULL, version bigint NOT NULL, row jsonb,
	at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION hist.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO hist.changes (id, op, version) VALUES (OLD.id, 'delete', OLD.version);
		RETURN OLD;
	END IF;
	INSERT INTO hist.changes (id, op, version, row) VALUES (NEW.id, lower(TG_OP), NEW.version, to_jsonb(NEW));
	RETURN NEW;
END $$;
CREATE TRIGGER log AFTER INSERT OR UPDATE OR DELETE ON hist.items FOR EACH ROW EXECUTE FUNCTION hist.log_change();
-- A slow warehouse on demand: the model calls pause() on one row in 50,
-- which sleeps knobs.pause_ms, so a scan (a diff, an extraction) lasts
-- long enough for a kill to land in it.
CREATE TABLE hist.knobs (pause_ms int NOT NULL);
INSERT INTO hist.knobs VALUES (0);
CREATE FUNCTION hist.pause() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE ms int;
BEGIN
	SELECT pause_ms INTO ms FROM hist.knobs;
	IF ms > 0 THEN PERFORM pg_sleep(ms / 1000.0); END IF;
	RETURN true;
END $$;
`

// historyModelSQL is the syncs' model.
const historyModelSQL = `SELECT id, version, name, note FROM hist.items WHERE CASE WHEN id % 50 = 0 THEN hist.pause() ELSE true END`

// historyModel is the model table, changed only by the driver.
type historyModel struct {
	t     *testing.T
	pool  *pgxpool.Pool
	maxID int64 // the highest id ever inserted
}

func newHistoryModel(t *testing.T, dsn string, rows int) *historyModel {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	m := &historyModel{t: t, pool: pool, maxID: int64(rows)}
	_, err = pool.Exec(ctx, historySchema)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO hist.items SELECT i, nextval('hist.version_seq'), 'item ' || i, 'note ' || i
		FROM generate_series(1, $1::bigint) AS i`, rows)
	require.NoError(t, err)
	return m
}

// modelChange is one batch of changes, drawn from the seed: ids to update
// and to delete (if present), ids to add back (if absent), and how many new
// ids to insert above every id so far.
type modelChange struct {
	update, delete, readd []int64
	insert                int
	note                  string // the new note of updated rows; "" sets NULL
}

func (c modelChange) String() string {
	return fmt.Sprintf("update %d, delete %d, re-add %d, insert %d rows", len(c.update), len(c.delete), len(c.readd), c.insert)
}

// exec runs a statement, again if the connection it got was one a Postgres
// restart had closed (the statement never reached the server then).
func (m *historyModel) exec(sql string, args ...any) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = m.pool.Exec(ctx, sql, args...)
		cancel()
		if err == nil || !isConnError(err) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

// isConnError reports an error of a connection, not of the statement.
func isConnError(err error) bool {
	s := err.Error()
	for _, frag := range []string{"connection refused", "broken pipe", "connection reset", "unexpected EOF", "closed", "conn busy",
		"the database system is", "terminating connection", "failed to connect", "EOF"} {
		if strings.Contains(s, frag) {
			return true
		}
	}
	return false
}

// apply makes one change; each statement commits on its own.
func (m *historyModel) apply(c modelChange) error {
	var note any
	if c.note != "" {
		note = c.note
	}
	if len(c.update) > 0 {
		if err := m.exec(`UPDATE hist.items SET version = nextval('hist.version_seq'), note = $2 WHERE id = ANY($1)`, c.update, note); err != nil {
			return fmt.Errorf("updating: %w", err)
		}
	}
	if len(c.delete) > 0 {
		if err := m.exec(`DELETE FROM hist.items WHERE id = ANY($1)`, c.delete); err != nil {
			return fmt.Errorf("deleting: %w", err)
		}
	}
	if len(c.readd) > 0 {
		if err := m.exec(`INSERT INTO hist.items SELECT i, nextval('hist.version_seq'), 'item ' || i, $2 FROM unnest($1::bigint[]) AS i
			ON CONFLICT (id) DO NOTHING`, c.readd, note); err != nil {
			return fmt.Errorf("adding back: %w", err)
		}
	}
	if c.insert > 0 {
		from := m.maxID + 1
		m.maxID += int64(c.insert)
		if err := m.exec(`INSERT INTO hist.items SELECT i, nextval('hist.version_seq'), 'item ' || i, $3
			FROM generate_series($1::bigint, $2::bigint) AS i ON CONFLICT (id) DO NOTHING`, from, m.maxID, note); err != nil {
			return fmt.Errorf("inserting: %w", err)
		}
	}
	return nil
}

// setPause makes the model sleep ms on one row in 50 (0: never).
func (m *historyModel) setPause(ms int) error {
	return m.exec(`UPDATE hist.knobs SET pause_ms = $1`, ms)
}

// rows returns the model's rows as a destination should hold them: by
// canonical key (capture.KeyString), numbers as json.Number.
func (m *historyModel) rows() (map[string]map[string]any, error) {
	ctx := context.Background()
	rows, err := m.pool.Query(ctx, `SELECT id, json_build_object('id', id, 'version', version, 'name', name, 'note', note)::text FROM hist.items`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]any{}
	for rows.Next() {
		var id int64
		var row string
		if err := rows.Scan(&id, &row); err != nil {
			return nil, err
		}
		data, err := decodeNumbers(row)
		if err != nil {
			return nil, err
		}
		out[itemKey(id)] = data
	}
	return out, rows.Err()
}

// modelEvent is one logged change of a key.
type modelEvent struct {
	seq     int64
	op      string // insert, update, delete
	version int64  // the row's new version; for a delete, the version deleted
	row     map[string]any
	at      time.Time
}

func (e modelEvent) String() string {
	if e.op == "delete" {
		return fmt.Sprintf("delete (of v%d)", e.version)
	}
	return fmt.Sprintf("%s v%d", e.op, e.version)
}

// history returns every key's changes, in commit order.
func (m *historyModel) history() (map[string][]modelEvent, error) {
	ctx := context.Background()
	rows, err := m.pool.Query(ctx, `SELECT seq, id, op, version, coalesce(row::text, ''), at FROM hist.changes ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]modelEvent{}
	for rows.Next() {
		var e modelEvent
		var id int64
		var row string
		if err := rows.Scan(&e.seq, &id, &e.op, &e.version, &row, &e.at); err != nil {
			return nil, err
		}
		if row != "" {
			if e.row, err = decodeNumbers(row); err != nil {
				return nil, err
			}
		}
		k := itemKey(id)
		out[k] = append(out[k], e)
	}
	return out, rows.Err()
}

// itemKey is the canonical key of item id, as capture.State keys it.
func itemKey(id int64) string {
	return capture.KeyString(map[string]any{"id": json.Number(fmt.Sprint(id))})
}

func decodeNumbers(s string) (map[string]any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	return m, d.Decode(&m)
}
