package query

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRelations(t *testing.T) {
	names := func(sql string) []string {
		var out []string
		for _, r := range Relations(sql) {
			out = append(out, r.String())
		}
		return out
	}
	cases := []struct {
		sql  string
		want []string
	}{
		{"SELECT * FROM users", []string{"users"}},
		{"select u.id from public.users u join crm.orders as o on o.uid = u.id", []string{"public.users", "crm.orders"}},
		{"SELECT * FROM a, b AS x, c y(q, r) WHERE 1 = 1", []string{"a", "b", "c"}},
		{`SELECT * FROM "My Schema"."Users" LEFT OUTER JOIN db.s.t ON true`, []string{"My Schema.Users", "db.s.t"}},
		{"WITH recent AS (SELECT * FROM events), x (a) AS MATERIALIZED (SELECT 1) SELECT * FROM recent JOIN x ON true",
			[]string{"events"}},
		{"SELECT extract(year FROM ts), substring(name FROM 2 FOR 3), trim(both 'x' from n) FROM t", []string{"t"}},
		{"SELECT a IS DISTINCT FROM b FROM t", []string{"t"}},
		{"SELECT * FROM generate_series(1, 3) AS g, (SELECT * FROM inner_t) AS s", []string{"inner_t"}},
		{"SELECT 'FROM fake' AS s, \"from\" FROM real_t -- FROM commented\n/* JOIN nope */", []string{"real_t"}},
		{"SELECT * FROM `proj.ds.tbl` JOIN ds2.t2 USING (id)", []string{"proj.ds.tbl", "ds2.t2"}},
		{"SELECT * FROM t1 CROSS JOIN LATERAL (SELECT 1) s, t2", []string{"t1", "t2"}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, names(c.sql), c.sql)
	}
	r := Relations(`SELECT * FROM "Quoted".plain`)
	require.Equal(t, []bool{true, false}, r[0].Quoted)
}
