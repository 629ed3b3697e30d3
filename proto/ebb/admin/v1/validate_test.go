package adminv1

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	okSync := &Sync{Name: "s", Source: "wh", Destination: "hook", Model: &Model{Sql: "SELECT 1"}, Mode: "upsert"}
	for _, tc := range []struct {
		req  interface{ Validate() error }
		want string // "" for valid; otherwise a part of the error
	}{
		{&CreateSourceRequest{Source: &Source{Name: "wh", Type: "postgres"}}, ""},
		{&CreateSourceRequest{}, "source is required"},
		{&CreateSourceRequest{Source: &Source{Name: "a.b", Type: "postgres"}}, "source.name"},
		{&UpdateSourceRequest{Source: &Source{Name: "wh"}}, "source.type is required"},
		{&GetSourceRequest{Name: ""}, "name"},
		{&DeleteDestinationRequest{Name: "x>"}, "name"},
		{&CreateDestinationRequest{Destination: &Destination{Name: "hook", Type: "webhook"}}, ""},
		{&CreateSyncRequest{Sync: okSync}, ""},
		{&CreateSyncRequest{Sync: &Sync{Name: "s", Source: "wh", Destination: "hook", Mode: "upsert"}}, "sync.model.sql is required"},
		{&UpdateSyncRequest{Sync: &Sync{Name: "s", Source: "w h"}}, "sync.source"},
		{&ApplyRequest{Syncs: []*Sync{okSync, {Name: strings.Repeat("x", 65)}}}, "syncs[1].name"},
		{&ApplyRequest{}, ""},
		{&TriggerRunRequest{Sync: "*"}, "sync"},
		{&GetRunRequest{RunId: "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, ""},
		{&GetRunRequest{RunId: "a.b"}, "run_id"},
		{&ListRunsRequest{}, ""},
		{&ListRunsRequest{Sync: "a b"}, "sync"},
		{&ListRunsRequest{Limit: MaxRunsLimit + 1}, "limit"},
		{&ListFailuresRequest{RunId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Limit: -1}, "limit"},
		{&ResetSyncRequest{Sync: "customers"}, ""},
		{&ResetSyncRequest{Sync: "a.b"}, "sync"},
	} {
		err := tc.req.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%T %v: unexpected error %v", tc.req, tc.req, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T %v: error %v, want one containing %q", tc.req, tc.req, err, tc.want)
		}
	}
}
