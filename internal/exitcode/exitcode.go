// Package exitcode classifies errors into kiln's process exit codes, in one place.
package exitcode

import "errors"

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

// Of returns the exit code for err.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var iv invalid
	if errors.As(err, &iv) && iv.Invalid() {
		return Invalid
	}
	return Failure
}
