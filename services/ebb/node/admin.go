package node

import (
	"context"

	"github.com/ebb-etl/ebb/libs/plane"
	srcbuiltin "github.com/ebb-etl/ebb/libs/source/builtin"
	"github.com/ebb-etl/ebb/services/admin"
)

func runAdmin(ctx context.Context, p *plane.Plane, o Options) error {
	return admin.Run(ctx, admin.Deps{
		JS: p.JS, Bus: p.Bus, Configs: p.Configs, Runs: p.Runs, Log: o.Log,
		Forget: func(ctx context.Context, sync, runID string) error { return p.ForgetRun(ctx, sync, runID) },
		Listen: o.Admin.Listen, Token: o.Admin.Token, Ready: o.Admin.Ready,
		OpenSource: srcbuiltin.Open,
	})
}
