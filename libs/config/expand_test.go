package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExpand(t *testing.T) {
	t.Setenv("EBB_TEST_DSN", "postgres://ebb:hunter2@127.0.0.1/wh")
	t.Setenv("EBB_TEST_TOKEN", "tok")
	cfg := map[string]any{
		"dsn":     "${EBB_TEST_DSN}",
		"headers": map[string]any{"Authorization": "Bearer ${EBB_TEST_TOKEN}"},
		"list":    []any{"${EBB_TEST_TOKEN}", 3},
		"n":       5,
		"literal": "$EBB_TEST_TOKEN stays",
	}
	out, err := Expand(cfg)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"dsn":     "postgres://ebb:hunter2@127.0.0.1/wh",
		"headers": map[string]any{"Authorization": "Bearer tok"},
		"list":    []any{"tok", 3},
		"n":       5,
		"literal": "$EBB_TEST_TOKEN stays",
	}, out)
	assert.Equal(t, "${EBB_TEST_DSN}", cfg["dsn"], "the input is not changed")

	_, err = Expand(map[string]any{"nested": map[string]any{"dsn": "${EBB_TEST_MISSING}"}})
	require.EqualError(t, err, "config.nested.dsn: environment variable EBB_TEST_MISSING is not set")
	_, err = Expand(map[string]any{"list": []any{"x", "${EBB_TEST_MISSING}-${EBB_TEST_GONE}"}})
	require.EqualError(t, err, "config.list[1]: environment variables EBB_TEST_MISSING, EBB_TEST_GONE are not set")
}

func TestRedact(t *testing.T) {
	cfg := map[string]any{
		"dsn":         "${WAREHOUSE_DSN}",
		"url_dsn":     "postgres://ebb:hunter2@127.0.0.1:5432/wh?sslmode=disable",
		"ref_dsn":     "postgres://ebb:${PG_PASSWORD}@127.0.0.1/wh",
		"kv_dsn":      "host=127.0.0.1 user=ebb password=hunter2 dbname=wh",
		"secret":      "s3cr3t",
		"password":    "${PG_PASSWORD}",
		"url":         "http://127.0.0.1:9000/hook",
		"batch_size":  100,
		"headers":     map[string]any{"Authorization": "Bearer abc", "X-Team": "growth"},
		"credentials": map[string]any{"user": "ebb", "key": "k"},
	}
	out := Redact(cfg)
	assert.Equal(t, map[string]any{
		"dsn":         "${WAREHOUSE_DSN}",
		"url_dsn":     "postgres://ebb:****@127.0.0.1:5432/wh?sslmode=disable",
		"ref_dsn":     "postgres://ebb:${PG_PASSWORD}@127.0.0.1/wh",
		"kv_dsn":      "host=127.0.0.1 user=ebb password=**** dbname=wh",
		"secret":      "****",
		"password":    "${PG_PASSWORD}",
		"url":         "http://127.0.0.1:9000/hook",
		"batch_size":  100,
		"headers":     map[string]any{"Authorization": "****", "X-Team": "growth"},
		"credentials": map[string]any{"user": "****", "key": "****"},
	}, out)
	assert.Equal(t, "s3cr3t", cfg["secret"], "the input is not changed")
}
