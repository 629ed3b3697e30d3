package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDemo runs `ebb dev --demo --once`, the README's first command, on
// random ports and checks what it says each run sent.
func TestDemo(t *testing.T) {
	data := t.TempDir()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"dev", "--demo", "--once", "--data", data, "--nats-port", "-1", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"})
	require.NoError(t, root.Execute(), out.String())

	text := out.String()
	run1 := text[strings.Index(text, "Run 1"):strings.Index(text, "Run 2")]
	require.Contains(t, run1, "succeeded")
	require.Regexp(t, `adds\s+1000 sent of 1000 planned`, run1)
	run2 := text[strings.Index(text, "Run 2"):]
	require.Contains(t, run2, "succeeded")
	require.Regexp(t, `adds\s+10 sent of 10 planned`, run2)
	require.Regexp(t, `changes\s+25 sent of 25 planned`, run2)
	require.Regexp(t, `deletes\s+5 sent of 5 planned`, run2)
	require.Regexp(t, `failed\s+0`, run2)

	received, err := os.ReadFile(filepath.Join(data, "demo", "received.jsonl"))
	require.NoError(t, err)
	require.Equal(t, 1040, bytes.Count(received, []byte("\n")))
}
