package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kiln-dev/kiln/internal/inspect"
	"github.com/kiln-dev/kiln/internal/testenv"
	"github.com/kiln-dev/kiln/internal/vm"
)

// nodeConfig writes a Butane config and translates it with `kiln config translate`, as a
// user would, returning the Ignition file.
func nodeConfig(t *testing.T, butane string) string {
	t.Helper()
	kiln, _ := requireInputs(t)
	dir := t.TempDir()
	bu := filepath.Join(dir, "node.bu")
	if err := os.WriteFile(bu, []byte(butane), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kiln, "config", "translate", bu).Output()
	if err != nil {
		t.Fatalf("kiln config translate: %v", err)
	}
	ign := filepath.Join(dir, "node.ign")
	if err := os.WriteFile(ign, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return ign
}

// TestIgnitionApplied boots the minimal image with a per-node config by fw_cfg: files,
// directories, links, a unit enabled with a drop-in, a masked unit, a user with an SSH key
// and the hostname are in place when systemd starts, and the config is not applied again on
// the next boot. The user logs in over SSH with the key (through a forwarded port); a login
// with another key or a password is refused; the node's host key, made at first boot on /var,
// is the one it presents, and the same after a reboot.
func TestIgnitionApplied(t *testing.T) {
	key, authorized := sshKey(t)
	ign := nodeConfig(t, `variant: fcos
version: 1.5.0
passwd:
  users:
    - name: core
      groups: [sudo]
      ssh_authorized_keys: ["`+authorized+`"]
storage:
  files:
    - path: /etc/hostname
      overwrite: true
      contents: {inline: "ign-node\n"}
    - path: /etc/kiln-test/hello
      mode: 0640
      user: {name: core}
      contents: {inline: "hello from ignition\n"}
  directories:
    - path: /var/lib/kiln-test
      mode: 0700
  links:
    - path: /etc/kiln-test/link
      target: /etc/kiln-test/hello
systemd:
  units:
    - name: kiln-test.service
      enabled: true
      contents: |
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/bin/sh -c 'echo "$$GREETING" > /run/kiln-test'
        [Install]
        WantedBy=multi-user.target
      dropins:
        - name: 10-greeting.conf
          contents: |
            [Service]
            Environment=GREETING=dropin-works
    - name: systemd-timesyncd.service
      mask: true
`)
	disk := copyImage(t, buildRecipe(t, "minimal"))
	dir := artifactDir(t)
	sshPort := freePort(t, "tcp")
	cfg := vm.Config{Image: disk, Persist: true, Ignition: ign, Forwards: []vm.Forward{{Host: sshPort, Guest: 22}}}
	m := Boot(t, cfg, dir, "first-boot")
	bootToShell(t, m)
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: node config from fw_cfg:opt/com.coreos/config applied`), time.Second); err != nil {
		t.Error(err)
	}
	for cmd, want := range map[string]string{
		"hostname":                                     "ign-node",
		"cat /etc/kiln-test/hello":                     "hello from ignition",
		"stat -c '%a %U' /etc/kiln-test/hello":         "640 core",
		"readlink /etc/kiln-test/link":                 "/etc/kiln-test/hello",
		"stat -c %a /var/lib/kiln-test":                "700",
		"cat /run/kiln-test":                           "dropin-works",
		"systemctl is-enabled kiln-test.service":       "enabled",
		"systemctl is-enabled systemd-timesyncd; true": "masked",
		"cat /home/core/.ssh/authorized_keys":          authorized,
		"stat -c %U /home/core/.ssh":                   "core",
		"id -nG core":                                  "core sudo",
		"cut -d' ' -f1 /var/lib/kiln/node-config":      "sha256:" + sha256File(t, ign),
	} {
		if out := mustRun(t, m, cmd, 0); out != want {
			t.Errorf("`%s` = %q, want %q", cmd, out, want)
		}
	}
	hostKey := mustRun(t, m, "cut -d' ' -f1,2 /var/lib/ssh/ssh_host_ed25519_key.pub", 0)
	if out, presented, err := sshRun(sshPort, "core", ssh.PublicKeys(key), "id -un; hostname"); err != nil || out != "core\nign-node" || presented != hostKey {
		t.Errorf("ssh core@node with its key: %q, %v; host key %q, want %q", out, err, presented, hostKey)
	}
	other, _ := sshKey(t)
	for name, auth := range map[string]ssh.AuthMethod{"another key": ssh.PublicKeys(other), "a password": ssh.Password(""), "keyboard-interactive": ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil })} {
		if out, _, err := sshRun(sshPort, "core", auth, "id"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("ssh core@node with %s: %q, %v; want it refused", name, out, err)
		}
	}
	if out, _, err := sshRun(sshPort, "root", ssh.PublicKeys(key), "id"); err == nil {
		t.Errorf("ssh root@node with core's key: %q; want it refused", out)
	}
	// Applied once: a change made after first boot survives the next boot.
	mustRun(t, m, "echo changed > /etc/kiln-test/hello && sync", 0)
	m.Kill()
	m2 := Boot(t, cfg, dir, "second-boot")
	bootToShell(t, m2)
	if out := mustRun(t, m2, "cat /etc/kiln-test/hello", 0); out != "changed" {
		t.Errorf("the config was applied again on the second boot: hello = %q", out)
	}
	if _, presented, err := sshRun(sshPort, "core", ssh.PublicKeys(key), "true"); err != nil || presented != hostKey {
		t.Errorf("ssh after a reboot: %v; host key %q, want the first boot's %q", err, presented, hostKey)
	}
}

// TestIgnitionUnsupportedStopsBoot: a config section kiln does not implement stops the boot
// with one located line naming it, and the machine powers off.
func TestIgnitionUnsupportedStopsBoot(t *testing.T) {
	ign := filepath.Join(t.TempDir(), "bad.ign")
	os.WriteFile(ign, []byte("{\"ignition\": {\"version\": \"3.4.0\"},\n \"storage\": {\"luks\": [{\"name\": \"data\", \"device\": \"/dev/vdb\"}]}}\n"), 0o644)
	disk := copyImage(t, buildRecipe(t, "minimal"))
	m := Boot(t, vm.Config{Image: disk, Ignition: ign}, artifactDir(t), "unsupported")
	want := regexp.MustCompile(`^kiln-init: error: node config fw_cfg:opt/com.coreos/config:2:23: \$\.storage\.luks: storage\.luks is not supported by kiln`)
	if _, _, err := m.Wait(0, want, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Wait(0, regexp.MustCompile(`Welcome to|systemd\[1\]`), 0); err == nil {
		t.Error("systemd started although the node config was refused")
	}
	if err := m.WaitExit(90 * time.Second); err != nil {
		t.Errorf("after the error the machine did not power off: %v", err)
	}
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

// TestIgnitionFromESP: a config dropped onto the ESP as \kiln\config.ign (as a user would on a
// burnt disk) is found and applied when no fw_cfg config is given.
// TestIgnitionFromESP: a config copied onto the image's ESP as \kiln\config.ign (with mtools,
// as onto a burnt disk) is applied; a kiln-config stick attached beside it is not looked at,
// since the ESP comes first.
func TestIgnitionFromESP(t *testing.T) {
	ign := writeConfig(t, "from-esp")
	disk := copyImage(t, buildRecipe(t, "minimal"))
	rep, err := inspect.Image(disk)
	if err != nil {
		t.Fatal(err)
	}
	var esp int64
	for _, p := range rep.Partitions {
		if p.Label == "ESP" {
			esp = p.Start
		}
	}
	if esp == 0 {
		t.Fatal("no ESP in the image")
	}
	if out, err := exec.Command("mcopy", "-i", fmt.Sprintf("%s@@%d", disk, esp), ign, "::/kiln/config.ign").CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	m := Boot(t, vm.Config{Image: disk, Disks: []string{configStick(t, writeConfig(t, "from-stick"))}}, artifactDir(t), "esp")
	bootToShell(t, m)
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: node config from /dev/vda1:/kiln/config.ign applied`), 0); err != nil {
		t.Error(err)
	}
	if out := mustRun(t, m, "hostname", 0); out != "from-esp" {
		t.Errorf("hostname = %q, want from-esp (from the ESP's config, which comes before the stick's)", out)
	}
}

// TestIgnitionFromConfigPartition: with nothing by fw_cfg and nothing on the ESP, the config
// is read from config.ign at the root of a partition labelled kiln-config on another disk.
func TestIgnitionFromConfigPartition(t *testing.T) {
	disk := copyImage(t, buildRecipe(t, "minimal"))
	m := Boot(t, vm.Config{Image: disk, Disks: []string{configStick(t, writeConfig(t, "from-stick"))}}, artifactDir(t), "stick")
	bootToShell(t, m)
	if _, _, err := m.Wait(0, regexp.MustCompile(`kiln-init: node config from /dev/vdb1:/config.ign applied`), 0); err != nil {
		t.Error(err)
	}
	if out := mustRun(t, m, "hostname", 0); out != "from-stick" {
		t.Errorf("hostname = %q, want from-stick (from the kiln-config partition)", out)
	}
}

// writeConfig writes an Ignition config that names the node.
func writeConfig(t *testing.T, hostname string) string {
	ign := filepath.Join(t.TempDir(), "config.ign")
	err := os.WriteFile(ign, []byte(`{"ignition": {"version": "3.4.0"}, "storage": {"files": [
  {"path": "/etc/hostname", "overwrite": true, "contents": {"source": "data:,`+hostname+`%0A"}}]}}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return ign
}

// configStick makes a 16 MiB disk as the README tells a user to: GPT, one partition labelled
// kiln-config with a FAT file system, ign copied to its root as config.ign.
func configStick(t *testing.T, ign string) string {
	for _, tool := range [][2]string{{"sfdisk", "fdisk"}, {"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}} {
		testenv.RequireTool(t, tool[0], tool[1])
	}
	stick := filepath.Join(t.TempDir(), "stick.raw")
	for _, c := range [][]string{
		{"truncate", "-s", "16M", stick},
		{"sh", "-c", `echo 'start=2048, type=linux, name="kiln-config"' | sfdisk -q --label gpt "$0"`, stick},
		{"mkfs.vfat", "--offset=2048", stick, "14336"},
		{"mcopy", "-i", stick + "@@1M", ign, "::/config.ign"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return stick
}
