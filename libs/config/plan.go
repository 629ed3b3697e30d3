package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Action is what a Change does to a resource.
type Action string

const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

// Change is one step of a plan.
type Change struct {
	Kind   Kind
	Name   string
	Action Action
	// Fields lists, for updates, the fields that differ: top-level fields,
	// or one level into a mapping such as config ("config.url", "mode").
	// Never the values themselves: they may be secret.
	Fields []string
}

// String reads like "+ create sync customers_to_crm" or
// "~ update destination crm_hook (config.batch_size, config.url)".
func (c Change) String() string {
	sign := map[Action]string{ActionCreate: "+", ActionUpdate: "~", ActionDelete: "-"}[c.Action]
	s := fmt.Sprintf("%s %s %s %s", sign, c.Action, c.Kind, c.Name)
	if len(c.Fields) > 0 {
		s += " (" + strings.Join(c.Fields, ", ") + ")"
	}
	return s
}

// Plan returns what must change for the store (current) to match the file
// (desired), which should have passed File.Validate: that is the apply-time
// referential check, as a sync may only name sources and destinations that
// exist in the desired state.
//
// Desired resources missing from current are created, those that differ are
// updated, and current resources missing from desired are deleted;
// unchanged resources are not listed. Resources are compared as JSON, so
// 5 and 5.0, map key order, and null, absent and empty values do not count
// as differences. The order is valid to apply one change at a time: creates
// and updates of sources, then destinations, then syncs (in desired's
// order); then deletes of syncs, then destinations, then sources (in
// current's order).
func Plan(current, desired File) []Change {
	have, want := resources(current), resources(desired)
	var plan []Change
	for _, kind := range []Kind{KindSource, KindDestination, KindSync} {
		for _, r := range want[kind] {
			i := slices.IndexFunc(have[kind], func(o named) bool { return o.name == r.name })
			if i < 0 {
				plan = append(plan, Change{Kind: kind, Name: r.name, Action: ActionCreate})
			} else if fields := diff(have[kind][i].value, r.value); len(fields) > 0 {
				plan = append(plan, Change{Kind: kind, Name: r.name, Action: ActionUpdate, Fields: fields})
			}
		}
	}
	for _, kind := range []Kind{KindSync, KindDestination, KindSource} {
		for _, r := range have[kind] {
			if !slices.ContainsFunc(want[kind], func(o named) bool { return o.name == r.name }) {
				plan = append(plan, Change{Kind: kind, Name: r.name, Action: ActionDelete})
			}
		}
	}
	return plan
}

// named is a resource as normalised JSON.
type named struct {
	name  string
	value map[string]any
}

func resources(f File) map[Kind][]named {
	m := map[Kind][]named{}
	for _, s := range f.Sources {
		m[KindSource] = append(m[KindSource], named{s.Name, normalise(s)})
	}
	for _, d := range f.Destinations {
		m[KindDestination] = append(m[KindDestination], named{d.Name, normalise(d)})
	}
	for _, s := range f.Syncs {
		m[KindSync] = append(m[KindSync], named{s.Name, normalise(s)})
	}
	return m
}

// normalise returns v as the store would hold it, read back, without null
// or empty values. A value JSON cannot encode normalises to empty; Parse
// never produces one.
func normalise(v any) map[string]any {
	var m map[string]any
	if data, err := json.Marshal(v); err == nil {
		_ = json.Unmarshal(data, &m)
	}
	out, _ := prune(m).(map[string]any)
	return out
}

// prune drops null and empty values from maps, recursively; nil if nothing
// is left.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e = prune(e); e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
		if len(x) == 0 {
			return nil
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i, e := range x {
			x[i] = prune(e)
		}
	}
	return v
}

// diff lists the fields whose values differ, going one level into mappings
// present on both sides.
func diff(a, b map[string]any) []string {
	var fields []string
	for _, k := range keys(a, b) {
		if reflect.DeepEqual(a[k], b[k]) {
			continue
		}
		am, aok := a[k].(map[string]any)
		bm, bok := b[k].(map[string]any)
		if !aok || !bok {
			fields = append(fields, k)
			continue
		}
		for _, sub := range keys(am, bm) {
			if !reflect.DeepEqual(am[sub], bm[sub]) {
				fields = append(fields, k+"."+sub)
			}
		}
	}
	return fields
}

// keys returns the keys of a and b, sorted, once each.
func keys(a, b map[string]any) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}
