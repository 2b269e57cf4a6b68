// Package exitcode classifies errors into kiln's process exit codes, in one place.
package exitcode

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit codes.
const (
	OK      = 0
	Failure = 1 // the build or run failed
	Invalid = 2 // bad recipe, bad arguments or bad usage
)

// Invalid errors are the user's input being wrong: they implement Invalid() bool.
type invalid interface{ Invalid() bool }

// UsageError marks a command-line usage mistake.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }
func (e UsageError) Invalid() bool { return true }

// Interrupted is a command stopped by a signal: it exits 128 + the signal's number, as a
// shell reports it (130 for SIGINT, 143 for SIGTERM).
type Interrupted struct{ Signal syscall.Signal }

func (e Interrupted) Error() string { return "interrupted (" + unix.SignalName(e.Signal) + ")" }

// Of returns the exit code for err.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var in Interrupted
	if errors.As(err, &in) {
		return 128 + int(in.Signal)
	}
	var iv invalid
	if errors.As(err, &iv) && iv.Invalid() {
		return Invalid
	}
	return Failure
}
