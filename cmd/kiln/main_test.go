package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run this binary as kiln itself (KILN_TEST_MAIN=1).
func TestMain(m *testing.M) {
	if os.Getenv("KILN_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestSignalStopsACommand: kiln validate reading a recipe that never arrives (a FIFO nobody
// writes) stops within two seconds of SIGINT or SIGTERM, exiting 128+signal and saying why.
func TestSignalStopsACommand(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		code int
		msg  string
	}{
		{syscall.SIGINT, 130, "kiln: interrupted (SIGINT)"},
		{syscall.SIGTERM, 143, "kiln: interrupted (SIGTERM)"},
	} {
		t.Run(c.msg, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "slow.yaml")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "validate", fifo)
			cmd.Env = append(os.Environ(), "KILN_TEST_MAIN=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // it is blocked opening the FIFO
			sent := time.Now()
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if took := time.Since(sent); !errors.As(err, &ee) || ee.ExitCode() != c.code || !strings.Contains(stderr.String(), c.msg) {
					t.Errorf("after %v: %v, stderr %q; want exit %d and %q", took, err, stderr.String(), c.code, c.msg)
				}
			case <-time.After(2 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("kiln validate still running 2 s after %v", c.sig)
			}
		})
	}
}
