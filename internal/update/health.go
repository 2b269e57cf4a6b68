package update

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ownUnits are the units of the boot assessment itself, whose jobs wait for it.
var ownUnits = map[string]bool{"kiln-health.service": true, "kiln-bless.service": true}

// Healthy waits until the boot's other start-up jobs are done and checks that no unit failed;
// on a Kubernetes node it then waits for kubelet to answer healthy and, on a control plane, for
// the local API server to be ready. It returns nil when the boot is healthy.
func Healthy(ctx context.Context, say func(string, ...any)) error {
	if err := poll(ctx, "the boot's other start-up jobs to finish", otherJobsDone); err != nil {
		return err
	}
	out, _ := exec.CommandContext(ctx, "systemctl", "--failed", "--no-legend", "--plain").Output()
	if failed := strings.TrimSpace(string(out)); failed != "" {
		return fmt.Errorf("units failed on this boot:\n%s", failed)
	}
	say("no unit failed")
	if _, err := os.Stat("/etc/kubernetes/kubelet.conf"); err == nil || enabled(ctx, "kiln-node-up.service") {
		if err := poll(ctx, "kubelet to answer healthy", get("http://127.0.0.1:10248/healthz")); err != nil {
			return err
		}
		say("kubelet healthy")
	}
	if _, err := os.Stat("/etc/kubernetes/manifests/kube-apiserver.yaml"); err == nil {
		if err := poll(ctx, "the API server to be ready", get("https://127.0.0.1:6443/readyz")); err != nil {
			return err
		}
		say("API server ready")
	}
	return nil
}

func enabled(ctx context.Context, unit string) bool {
	return exec.CommandContext(ctx, "systemctl", "-q", "is-enabled", unit).Run() == nil
}

// otherJobsDone reports whether systemd runs no start-up job but the assessment's own: the
// jobs still waiting then wait for it (multi-user.target, and what is ordered after it).
func otherJobsDone(ctx context.Context) (bool, string) {
	out, err := exec.CommandContext(ctx, "systemctl", "list-jobs", "--no-legend", "--plain").Output()
	if err != nil {
		return false, err.Error()
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line) // JOB UNIT TYPE STATE
		if len(f) < 4 || f[3] != "running" || ownUnits[f[1]] {
			continue
		}
		return false, "still starting: " + f[1]
	}
	return true, ""
}

// get checks that url answers 200 "ok" (TLS unverified: the local API server's certificate is
// the cluster's, and only liveness is asked).
func get(url string) func(context.Context) (bool, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return func(ctx context.Context) (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode == 200 && strings.TrimSpace(string(b)) == "ok", fmt.Sprintf("%s: %d %s", url, resp.StatusCode, b)
	}
}

// poll calls check every two seconds until it is true or ctx ends.
func poll(ctx context.Context, what string, check func(context.Context) (bool, string)) error {
	last := ""
	for {
		ok, why := check(ctx)
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %s)", what, ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}
