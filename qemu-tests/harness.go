// Package qemutests is kiln's VM test harness and its scenarios. The harness boots an image in
// QEMU with OVMF (internal/vm), captures the serial console to a file, waits for patterns with
// timeouts, fails at once on a kernel panic, an oops, a failed unit, emergency mode or a
// kiln-init error (as Fedora CoreOS's kola does), runs commands on the serial root shell, and
// records when each boot milestone was reached as JSON next to the console log.
package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/testenv"
	"github.com/kiln-dev/kiln/internal/vm"
)

// badPatterns end a boot at once: nothing good follows them.
var badPatterns = []*regexp.Regexp{
	regexp.MustCompile(`Kernel panic - not syncing`),
	regexp.MustCompile(`\bOops: `),
	regexp.MustCompile(`Failed to start .*`),
	regexp.MustCompile(`You are in emergency mode`),
	regexp.MustCompile(`kiln-init: error: .*`),
}

// Milestone is when a boot reached a point, in seconds since QEMU started.
type Milestone struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Machine is one running VM.
type Machine struct {
	t       testing.TB
	name    string
	dir     string
	start   time.Time
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{}
	exitErr error

	mu         sync.Mutex
	cond       *sync.Cond
	lines      []string
	stamps     []time.Time
	partial    string
	bad        string
	eof        bool
	milestones []Milestone
	cmdSeq     int
	allowed    []*regexp.Regexp // lines a bad pattern matches that the test expects
}

// Boot starts a VM for cfg; name labels its artefacts (console.log, milestones.json) under dir.
func Boot(t testing.TB, cfg vm.Config, dir, name string) *Machine {
	t.Helper()
	testenv.RequireCheck(t, vm.Check())
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd, cleanup, err := vm.Command(context.Background(), cfg, pw, log)
	if err != nil {
		t.Fatal(err)
	}
	// The VM's private firmware variables (in a directory of its own under the temporary
	// directory) go when QEMU exits, or at the end of the test if it never started.
	cleanup = sync.OnceFunc(cleanup)
	t.Cleanup(cleanup)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	m := &Machine{t: t, name: name, dir: dir, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	m.cond = sync.NewCond(&m.mu)
	m.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting qemu: %v", err)
	}
	go m.read(pr, log)
	go func() {
		m.exitErr = cmd.Wait()
		cleanup()
		pw.Close()
		close(m.exited)
	}()
	t.Cleanup(func() { m.Kill(); m.writeMilestones() })
	return m
}

func (m *Machine) read(r io.Reader, log *os.File) {
	defer log.Close()
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			log.Write(buf[:n])
			m.consume(buf[:n])
		}
		if err != nil {
			break
		}
	}
	m.mu.Lock()
	m.eof = true
	m.cond.Broadcast()
	m.mu.Unlock()
}

// consume splits console output into lines; the unfinished last line (a shell prompt) is kept
// in partial, where Wait sees it too.
func (m *Machine) consume(b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.partial += string(b)
	for {
		i := strings.IndexByte(m.partial, '\n')
		if i < 0 {
			break
		}
		m.addLine(strings.TrimRight(m.partial[:i], "\r"))
		m.partial = m.partial[i+1:]
	}
	m.cond.Broadcast()
}

func (m *Machine) addLine(line string) {
	line = stripANSI(line)
	m.lines = append(m.lines, line)
	m.stamps = append(m.stamps, time.Now())
	for _, re := range badPatterns {
		if m.bad == "" && re.MatchString(line) && !m.expected(line) {
			m.bad = strings.TrimSpace(re.FindString(line))
		}
	}
}

// Wait waits until a console line after line index from matches re and returns the index of
// that line and its submatches. It fails on a bad pattern, on QEMU exiting, or at the timeout.
func (m *Machine) Wait(from int, re *regexp.Regexp, timeout time.Duration) (int, []string, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { m.mu.Lock(); m.cond.Broadcast(); m.mu.Unlock() })
	defer timer.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := from; ; {
		for ; i < len(m.lines); i++ {
			if sm := re.FindStringSubmatch(m.lines[i]); sm != nil {
				return i, sm, nil
			}
		}
		if sm := re.FindStringSubmatch(m.partial); sm != nil {
			// The prompt line: stamp it now and make it a line of its own.
			m.addLine(m.partial)
			m.partial = ""
			return i, sm, nil
		}
		switch {
		case m.bad != "":
			return i, nil, fmt.Errorf("%s: console shows %q (see %s)", m.name, m.bad, m.logPath())
		case m.eof:
			return i, nil, fmt.Errorf("%s: QEMU exited before %q (see %s)", m.name, re, m.logPath())
		case time.Now().After(deadline):
			return i, nil, fmt.Errorf("%s: no %q within %s (see %s)", m.name, re, timeout, m.logPath())
		}
		m.cond.Wait()
	}
}

// expected reports whether a test said line may come (Allow).
func (m *Machine) expected(line string) bool {
	for _, re := range m.allowed {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

// Allow tells the machine that console lines matching re are expected: a bad pattern they
// match does not end the boot.
func (m *Machine) Allow(re *regexp.Regexp) {
	m.mu.Lock()
	m.allowed = append(m.allowed, re)
	m.mu.Unlock()
}

// Lines is how many console lines the machine has printed; a Wait from it sees only what
// comes next.
func (m *Machine) Lines() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.lines)
}

// Send types cmd into the serial root shell without waiting for it (a reboot, which never
// returns).
func (m *Machine) Send(cmd string) {
	m.t.Helper()
	if _, err := io.WriteString(m.stdin, cmd+"\n"); err != nil {
		m.t.Fatalf("%s: typing %q: %v", m.name, cmd, err)
	}
}

// Milestone waits for re and records the time it was printed under name.
func (m *Machine) Milestone(name string, re *regexp.Regexp, timeout time.Duration) {
	m.t.Helper()
	i, _, err := m.Wait(0, re, timeout)
	if err != nil {
		m.t.Fatal(err)
	}
	m.RecordAt(name, i)
}

// RecordAt records milestone name at the time console line i was read.
func (m *Machine) RecordAt(name string, i int) {
	m.mu.Lock()
	m.milestones = append(m.milestones, Milestone{Name: name, Seconds: m.stamps[i].Sub(m.start).Seconds()})
	m.mu.Unlock()
}

// Mark records that the milestone name is reached now.
func (m *Machine) Mark(name string) {
	m.mu.Lock()
	m.milestones = append(m.milestones, Milestone{Name: name, Seconds: time.Since(m.start).Seconds()})
	m.mu.Unlock()
}

// Milestones returns what was recorded so far.
func (m *Machine) Milestones() []Milestone {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Milestone(nil), m.milestones...)
}

// Run types cmd into the serial root shell and returns its output and exit status.
func (m *Machine) Run(cmd string, timeout time.Duration) (string, int) {
	m.t.Helper()
	m.mu.Lock()
	m.cmdSeq++
	seq, from := m.cmdSeq, len(m.lines)
	m.mu.Unlock()
	begin, end := fmt.Sprintf("KILN-BEGIN-%d", seq), fmt.Sprintf("KILN-END-%d", seq)
	// The end marker starts a line of its own even when the output does not end in a newline
	// (curl's does not).
	line := fmt.Sprintf("echo %s-$((1+0)); %s; printf '\\n%s-%%d\\n' $?\n", begin, cmd, end)
	if _, err := io.WriteString(m.stdin, line); err != nil {
		m.t.Fatalf("%s: typing %q: %v", m.name, cmd, err)
	}
	// The echo of the typed line holds the literals "$((1+0))" and "%d"; only the outputs
	// hold numbers.
	b, _, err := m.Wait(from, regexp.MustCompile("^"+begin+"-1$"), timeout)
	if err != nil {
		m.t.Fatal(err)
	}
	e, sm, err := m.Wait(b+1, regexp.MustCompile(end+`-(\d+)`), timeout)
	if err != nil {
		m.t.Fatal(err)
	}
	m.mu.Lock()
	var kept []string
	for _, l := range m.lines[b+1 : e] {
		// the kernel and kiln-node-up's milestones (written to /dev/console) may print
		// between a command's lines
		if !kernelLine.MatchString(l) && !milestoneLine.MatchString(l) {
			kept = append(kept, l)
		}
	}
	m.mu.Unlock()
	out := strings.Join(kept, "\n")
	code := 0
	fmt.Sscan(sm[1], &code)
	return strings.TrimSpace(out), code
}

var (
	kernelLine    = regexp.MustCompile(`^\[\s*\d+\.\d+\] `)
	milestoneLine = regexp.MustCompile(`^kiln: `)
)

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]|\r`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// WaitExit waits for the guest to power off.
func (m *Machine) WaitExit(timeout time.Duration) error {
	select {
	case <-m.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s: still running after %s", m.name, timeout)
	}
}

// Kill pulls the plug: QEMU is killed, the guest gets no chance to shut down.
func (m *Machine) Kill() {
	select {
	case <-m.exited:
	default:
		m.cmd.Process.Kill()
		<-m.exited
	}
}

func (m *Machine) logPath() string { return filepath.Join(m.dir, "console.log") }

func (m *Machine) writeMilestones() {
	b, _ := json.MarshalIndent(map[string]any{"machine": m.name, "milestones": m.Milestones()}, "", "  ")
	os.WriteFile(filepath.Join(m.dir, "milestones.json"), b, 0o644)
}
