package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/plan"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// Limits of the kubeadm run: it validates one file, so a second is plenty on any machine, and
// its report is a few lines.
const (
	kubeadmTimeout = 2 * time.Minute
	kubeadmOutput  = 64 << 10
)

// nobody is the user the image's kubeadm runs as on the build host.
const nobody = 65534

// kubeadmConfig runs the image's own kubeadm (`kubeadm config validate`) over the kubeadm
// configuration in the root, as the node will read it, so that nothing kubeadm refuses at
// first boot leaves the build. kubeadm is the one program from an image kiln runs, and it runs
// confined: a copy of it and of the file in a fresh directory, as nobody, in its own network
// (none), IPC and host-name namespaces, with an empty environment, killed with kiln and after
// a timeout. A root without the file (a worker joins with its per-node config) is not checked.
func kubeadmConfig(ctx context.Context, r *recipe.Loaded, k *plan.Kubernetes, staging string) error {
	if k == nil {
		return nil
	}
	root, err := os.OpenRoot(staging)
	if err != nil {
		return err
	}
	defer root.Close()
	cfg, err := root.ReadFile(strings.TrimPrefix(kubenode.KubeadmConfigPath, "/"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", kubenode.KubeadmConfigPath, err)
	}
	dir, remove, err := atomicfile.TempDir("", "kiln-kubeadm-")
	if err != nil {
		return err
	}
	defer remove()
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(dir, "kubeadm")
	if err := copyOut(root, "usr/bin/kubeadm", bin, 0o755); err != nil {
		return fmt.Errorf("copying the image's /usr/bin/kubeadm: %w", err)
	}
	file := filepath.Join(dir, "kubeadm.yaml")
	if err := os.WriteFile(file, cfg, 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, kubeadmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "config", "validate", "--config", file)
	cmd.Dir, cmd.Env = dir, []string{"HOME=/nonexistent", "PATH=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}},
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	out := &capped{max: kubeadmOutput}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("the image's kubeadm validating %s: %w", kubenode.KubeadmConfigPath, ctx.Err())
	case errors.As(err, &exit):
		return r.Problem("kubernetes", "the image's kubeadm refuses the configuration kiln made from this recipe (%s): %s", kubenode.KubeadmConfigPath, kubeadmError(out.String()))
	default:
		return fmt.Errorf("running the image's kubeadm to validate %s: %w", kubenode.KubeadmConfigPath, err)
	}
}

// kubeadmError is the first "error:" line of kubeadm's report, or the report.
func kubeadmError(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(l), "error: "); ok {
			return e
		}
	}
	return strings.TrimSpace(out)
}

// copyOut copies the regular file name of root to dst (links inside root are followed,
// none out of it).
func copyOut(root *os.Root, name, dst string, perm os.FileMode) error {
	src, err := root.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
