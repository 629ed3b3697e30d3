package config

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseExample(t *testing.T) File {
	t.Helper()
	f, err := LoadFile("testdata/ebb.yaml")
	require.NoError(t, err)
	return f
}

// stored returns f as the store gives it back: through JSON.
func stored(t *testing.T, f File) File {
	t.Helper()
	data, err := json.Marshal(f)
	require.NoError(t, err)
	var out File
	require.NoError(t, json.Unmarshal(data, &out))
	return out
}

func strs(changes []Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.String()
	}
	return out
}

func TestPlanCreate(t *testing.T) {
	plan := Plan(File{}, parseExample(t))
	assert.Equal(t, []Change{
		{Kind: KindSource, Name: "warehouse", Action: ActionCreate},
		{Kind: KindDestination, Name: "crm_hook", Action: ActionCreate},
		{Kind: KindSync, Name: "customers_to_crm", Action: ActionCreate},
	}, plan)
	assert.Equal(t, "+ create sync customers_to_crm", plan[2].String())
}

func TestPlanUnchanged(t *testing.T) {
	f := parseExample(t)
	assert.Empty(t, Plan(f, f))
	// The store holds JSON: 100 comes back as float64, and map order is lost.
	assert.Empty(t, Plan(stored(t, f), f))

	// nil and empty are the same.
	a := File{
		Sources: []Source{{Name: "wh", Type: "duckdb"}},
		Syncs:   []Sync{{Name: "s", Model: Model{SQL: "SELECT 1"}}},
	}
	b := File{
		Sources: []Source{{Name: "wh", Type: "duckdb", Config: map[string]any{"opts": map[string]any{}, "x": nil}}},
		Syncs:   []Sync{{Name: "s", Model: Model{SQL: "SELECT 1", PrimaryKey: []string{}}, Mapping: []Mapping{}}},
	}
	assert.Empty(t, Plan(a, b))
	assert.Empty(t, Plan(b, a))

	// int and float64 of the same value are the same.
	a.Sources[0].Config = map[string]any{"threads": 5}
	b.Sources[0].Config = map[string]any{"threads": 5.0}
	assert.Empty(t, Plan(a, b))
}

func TestPlanUpdate(t *testing.T) {
	current := stored(t, parseExample(t))
	desired := parseExample(t)
	desired.Destinations[0].Config["url"] = "http://secret-host.internal/hook"
	desired.Destinations[0].Config["batch_size"] = 50
	desired.Destinations[0].Config["headers"] = map[string]any{"X-Team": "sales"}
	desired.Syncs[0].Mode = ModeUpsert
	desired.Syncs[0].Model.PrimaryKey = []string{"id", "email"}
	desired.Syncs[0].Mapping = desired.Syncs[0].Mapping[:2]

	plan := Plan(current, desired)
	assert.Equal(t, []Change{
		{Kind: KindDestination, Name: "crm_hook", Action: ActionUpdate,
			Fields: []string{"config.batch_size", "config.headers", "config.url"}},
		{Kind: KindSync, Name: "customers_to_crm", Action: ActionUpdate,
			Fields: []string{"mapping", "mode", "model.primary_key"}},
	}, plan)
	assert.Equal(t, []string{
		"~ update destination crm_hook (config.batch_size, config.headers, config.url)",
		"~ update sync customers_to_crm (mapping, mode, model.primary_key)",
	}, strs(plan))
	for _, c := range strs(plan) {
		assert.NotContains(t, c, "secret-host") // never values
	}

	// A field added or removed counts too.
	desired = parseExample(t)
	desired.Sources[0].Config["schema"] = "analytics"
	desired.Sources[0].Type = "duckdb"
	delete(desired.Destinations[0].Config, "headers")
	assert.Equal(t, []string{
		"~ update source warehouse (config.schema, type)",
		"~ update destination crm_hook (config.headers)",
	}, strs(Plan(current, desired)))
}

func TestPlanDelete(t *testing.T) {
	desired := parseExample(t)
	current := stored(t, desired)
	current.Sources = append(current.Sources, Source{Name: "old_wh", Type: "duckdb"})
	current.Destinations = append([]Destination{{Name: "old_hook", Type: "webhook"}}, current.Destinations...)
	current.Syncs = append(current.Syncs, Sync{Name: "old_sync", Source: "old_wh", Destination: "old_hook"})
	assert.Equal(t, []string{
		"- delete sync old_sync",
		"- delete destination old_hook",
		"- delete source old_wh",
	}, strs(Plan(current, desired)))
	assert.Equal(t, []string{
		"- delete sync customers_to_crm",
		"- delete destination crm_hook",
		"- delete source warehouse",
	}, strs(Plan(stored(t, desired), File{})))
}

// TestPlanOrder checks that applying a mixed plan in order never leaves a
// sync naming a missing source or destination.
func TestPlanOrder(t *testing.T) {
	current := File{
		Sources:      []Source{{Name: "old_wh", Type: "duckdb"}, {Name: "wh", Type: "duckdb"}},
		Destinations: []Destination{{Name: "old_hook", Type: "webhook"}},
		Syncs: []Sync{
			{Name: "moved", Source: "old_wh", Destination: "old_hook", Mode: ModeUpsert},
			{Name: "gone", Source: "old_wh", Destination: "old_hook", Mode: ModeUpsert},
		},
	}
	desired := File{
		Sources:      []Source{{Name: "new_wh", Type: "postgres"}, {Name: "wh", Type: "duckdb"}},
		Destinations: []Destination{{Name: "new_hook", Type: "webhook"}},
		Syncs: []Sync{
			{Name: "added", Source: "new_wh", Destination: "new_hook", Mode: ModeInsert},
			{Name: "moved", Source: "new_wh", Destination: "new_hook", Mode: ModeUpsert},
		},
	}
	plan := Plan(current, desired)
	assert.Equal(t, []string{
		"+ create source new_wh",
		"+ create destination new_hook",
		"+ create sync added",
		"~ update sync moved (destination, source)",
		"- delete sync gone",
		"- delete destination old_hook",
		"- delete source old_wh",
	}, strs(plan))

	// Apply it step by step, checking references after each step.
	state := map[string]Sync{}
	exists := map[string]bool{}
	for _, s := range current.Sources {
		exists["source/"+s.Name] = true
	}
	for _, d := range current.Destinations {
		exists["destination/"+d.Name] = true
	}
	for _, s := range current.Syncs {
		state[s.Name] = s
	}
	want := map[string]Sync{}
	for _, s := range desired.Syncs {
		want[s.Name] = s
	}
	for _, c := range plan {
		switch {
		case c.Kind == KindSync && c.Action == ActionDelete:
			delete(state, c.Name)
		case c.Kind == KindSync:
			state[c.Name] = want[c.Name]
		case c.Action == ActionDelete:
			delete(exists, string(c.Kind)+"/"+c.Name)
		default:
			exists[string(c.Kind)+"/"+c.Name] = true
		}
		for _, s := range state {
			require.True(t, exists["source/"+s.Source], "after %q, sync %s names missing source %s", c, s.Name, s.Source)
			require.True(t, exists["destination/"+s.Destination], "after %q, sync %s names missing destination %s", c, s.Name, s.Destination)
		}
	}
	assert.Len(t, state, 2)
}

func TestChangeString(t *testing.T) {
	assert.Equal(t, "- delete source old_wh", Change{Kind: KindSource, Name: "old_wh", Action: ActionDelete}.String())
	assert.Equal(t, "~ update destination crm_hook (config.url, config.batch_size)",
		Change{Kind: KindDestination, Name: "crm_hook", Action: ActionUpdate, Fields: []string{"config.url", "config.batch_size"}}.String())
	assert.False(t, strings.HasPrefix(Change{Kind: KindSync, Name: "s", Action: ActionCreate}.String(), " "))
}
