package cli

import "io"

// SetTerminal makes commands take standard input for a terminal, or not,
// until the returned function restores the real check.
func SetTerminal(terminal bool) (restore func()) {
	was := isTerminal
	isTerminal = func(io.Reader) bool { return terminal }
	return func() { isTerminal = was }
}
