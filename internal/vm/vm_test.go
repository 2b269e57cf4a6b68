package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/testenv"
)

func TestArgs(t *testing.T) {
	a := strings.Join(args(Config{Image: "n.qcow2", Forwards: []Forward{{6443, 6443}, {2222, 22}}, Ignition: "n.ign",
		LAN: 42042, MAC: "52:54:00:00:10:11", Kubeconfig: "admin.conf", HostServices: []Forward{{Host: 5001, Guest: 5000}}, Disks: []string{"stick.raw", "more.qcow2"}}, "tcg", "CODE", "/vm/VARS",
		map[string]string{"n.qcow2": "qcow2", "stick.raw": "raw", "more.qcow2": "qcow2"}, nil), " ")
	for _, want := range []string{
		"-accel tcg,tb-size=2048", "-cpu max", "-smp 2", "-m 2048",
		"if=pflash,format=raw,readonly=on,file=CODE", "if=pflash,format=raw,file=/vm/VARS",
		"file=n.qcow2,format=qcow2,if=virtio,cache=unsafe,snapshot=on",
		"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:6443-:6443,hostfwd=tcp:127.0.0.1:2222-:22,guestfwd=tcp:10.0.2.100:5000-cmd:socat - TCP:127.0.0.1:5001",
		"-serial stdio -monitor none", "-fw_cfg name=opt/com.coreos/config,file=n.ign",
		"-netdev socket,id=lan,mcast=230.0.0.1:42042,localaddr=127.0.0.1 -device virtio-net-pci,netdev=lan,mac=52:54:00:00:10:11",
		"-drive file=stick.raw,format=raw,if=virtio,readonly=on -drive file=more.qcow2,format=qcow2,if=virtio,readonly=on",
		"-chardev file,id=kubeconfig,path=/vm/kubeconfig.port -device virtserialport,bus=vser0.0,chardev=kubeconfig,name=dev.kiln.kubeconfig",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("qemu args lack %q:\n%s", want, a)
		}
	}
	p := strings.Join(args(Config{Image: "n.raw", Persist: true, Monitor: true, CPUs: 4, MemoryMB: 4096}, "kvm", "C", "V", map[string]string{"n.raw": "raw"}, nil), " ")
	for _, want := range []string{"file=n.raw,format=raw,if=virtio,cache=unsafe -netdev", "-cpu host", "-smp 4", "-m 4096", "-serial mon:stdio"} {
		if !strings.Contains(p, want) {
			t.Errorf("qemu args lack %q:\n%s", want, p)
		}
	}
	if strings.Contains(p, "id=lan") {
		t.Errorf("a VM without --lan has a second interface:\n%s", p)
	}
}

func TestMissingFirmwareNamesThePackage(t *testing.T) {
	saved := firmware
	defer func() { firmware = saved }()
	firmware = [][2]string{{"/nonexistent/CODE.fd", "/nonexistent/VARS.fd"}}
	_, _, err := Firmware()
	if err == nil || !strings.Contains(err.Error(), "apt-get install ovmf") {
		t.Errorf("Firmware() = %v, want it to name the ovmf package", err)
	}
}

// TestCommandCleanupRemovesItsFiles: the VM's copy of the firmware variables and its
// kubeconfig port file live in a directory of their own under the temporary directory, which
// the cleanup Command returns removes (and may be called twice). QEMU and the firmware are
// stand-ins: Command only looks for them.
func TestCommandCleanupRemovesItsFiles(t *testing.T) {
	fake := t.TempDir()
	for _, f := range []string{QEMU, "CODE.fd", "VARS.fd"} {
		if err := os.WriteFile(filepath.Join(fake, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", fake)
	saved := firmware
	defer func() { firmware = saved }()
	firmware = [][2]string{{filepath.Join(fake, "CODE.fd"), filepath.Join(fake, "VARS.fd")}}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	img := filepath.Join(fake, "n.raw")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Image: img, Accel: "tcg"},
		{Image: img, Accel: "tcg", Forwards: []Forward{{Host: 16443, Guest: 6443}}, Kubeconfig: filepath.Join(t.TempDir(), "admin.conf")},
	} {
		cmd, cleanup, err := Command(context.Background(), c, nil, nil)
		if err != nil {
			t.Fatalf("Command() = %v", err)
		}
		var vars string
		for _, a := range cmd.Args {
			if v, ok := strings.CutPrefix(a, "if=pflash,format=raw,file="); ok {
				vars = v
			}
		}
		if !strings.HasPrefix(vars, tmp+string(filepath.Separator)) {
			t.Fatalf("firmware variables at %q, want them under TMPDIR %s", vars, tmp)
		}
		if _, err := os.Stat(vars); err != nil {
			t.Fatal(err)
		}
		cleanup()
		cleanup()
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("after cleanup the temporary directory holds %v", left)
		}
	}
}

func TestBlankSize(t *testing.T) {
	for in, want := range map[string]int64{"new:8G": 8 << 30, "new:1M": 1 << 20, "new:64T": 64 << 40, "new:1048576": 1 << 20} {
		if got, err := blankSize(in); err != nil || got != want {
			t.Errorf("blankSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"new:", "new:0", "new:-1G", "new:8X", "new:65T", "new:1K", "new:1000001", "new:9223372036854775807T"} {
		if _, err := blankSize(in); err == nil {
			t.Errorf("blankSize(%q) accepted", in)
		}
	}
}

// TestBlankDiskIsWritableAndPrivate: a new:SIZE disk is a sparse file of SIZE in the VM's
// private directory, attached writable, and goes with the directory.
func TestBlankDiskIsWritableAndPrivate(t *testing.T) {
	testenv.RequireCheck(t, Check())
	img := filepath.Join(t.TempDir(), "n.raw")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	disks := []string{"new:8G"}
	cmd, cleanup, err := Command(context.Background(), Config{Image: img, Disks: disks, Accel: "tcg"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if disks[0] != "new:8G" {
		t.Error("Command changed the caller's Disks")
	}
	a := strings.Join(cmd.Args, " ")
	i := strings.Index(a, "blank0.raw,format=raw,if=virtio,cache=unsafe")
	if i < 0 {
		t.Fatalf("no writable blank disk in %s", a)
	}
	p := a[strings.LastIndex(a[:i], "file=")+5 : i+len("blank0.raw")]
	if st, err := os.Stat(p); err != nil || st.Size() != 8<<30 {
		t.Errorf("blank disk %s: %v, %v", p, st, err)
	}
	cleanup()
	if _, err := os.Stat(p); err == nil {
		t.Error("the blank disk outlived its VM")
	}
}

// TestLiveMediaArgs: an iso is a read-only CD (or USB stick) in place of the virtio disk, a
// pxe directory boots its kernel with both initramfs images joined, 4-byte aligned, and its
// cmdline plus Append; a rw: disk is attached writable.
func TestLiveMediaArgs(t *testing.T) {
	iso := strings.Join(args(Config{Image: "m.iso", Disks: []string{"rw:target.raw"}}, "tcg", "C", "V", map[string]string{"target.raw": "raw"}, isoArgs(Config{Image: "m.iso"})), " ")
	for _, want := range []string{
		"-drive if=pflash,format=raw,file=V -drive if=none,id=cd0,media=cdrom,readonly=on,file=m.iso -device ide-cd,drive=cd0,bootindex=0 -netdev",
		"-drive file=target.raw,format=raw,if=virtio",
	} {
		if !strings.Contains(iso, want) {
			t.Errorf("qemu args lack %q:\n%s", want, iso)
		}
	}
	if strings.Contains(iso, "file=m.iso,format") || strings.Contains(iso, "target.raw,format=raw,if=virtio,readonly") {
		t.Errorf("the iso is also attached as a disk, or the rw: disk read-only:\n%s", iso)
	}
	if usb := strings.Join(isoArgs(Config{Image: "m.iso", USB: true}), " "); !strings.Contains(usb, "usb-storage,bus=xhci.0,drive=stick") || !strings.Contains(usb, "readonly=on,file=m.iso") {
		t.Errorf("usb stick args %q", usb)
	}

	pxe := t.TempDir()
	for name, data := range map[string]string{"vmlinuz": "K", "initrd.img": "01234", "root.img": "ROOT", "cmdline": "console=ttyS0 kiln.live=X\n"} {
		if err := os.WriteFile(filepath.Join(pxe, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := Medium(pxe); err != nil || m != MediumPXE {
		t.Fatalf("Medium(pxe dir) = %q, %v", m, err)
	}
	if _, err := Medium(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a pxe output (no vmlinuz)") {
		t.Errorf("Medium(empty dir) = %v", err)
	}
	dir := t.TempDir()
	a, err := pxeArgs(Config{Image: pxe, Append: []string{"kiln.install=first-empty"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(a, " "), "-kernel "+pxe+"/vmlinuz -initrd "+dir+"/initrd -append console=ttyS0 kiln.live=X kiln.install=first-empty"; got != want {
		t.Errorf("pxe args\n%s, want\n%s", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "initrd")); string(b) != "01234\x00\x00\x00ROOT" {
		t.Errorf("joined initrd %q", b)
	}
}
