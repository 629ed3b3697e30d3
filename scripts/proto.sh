#!/usr/bin/env sh
# Regenerates the Go code of proto/ from its .proto files (`make proto`).
# It needs only the Go module proxy: buf and the two protoc plugins are
# installed at pinned versions into proto/bin (git-ignored), buf runs them as
# local plugins, and it resolves the well-known types (Struct, Value,
# Timestamp) from its built-in copies, so no remote module or plugin is used.
# Set PROTO_REINSTALL=1 to reinstall the tools.
set -eu

cd "$(dirname "$0")/../proto"
export GOBIN="$PWD/bin"
export PATH="$GOBIN:$PATH"

if [ ! -x bin/buf ] || [ ! -x bin/protoc-gen-go ] || [ ! -x bin/protoc-gen-go-grpc ] || [ "${PROTO_REINSTALL:-}" = 1 ]; then
	go install github.com/bufbuild/buf/cmd/buf@v1.75.0
	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
fi

buf lint
buf generate
