// Package vm starts kiln images in QEMU with UEFI firmware (OVMF): it finds the firmware,
// decides between KVM and TCG by probing, and builds the QEMU command line. `kiln run` and the
// qemu-tests harness share it.
package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiln-dev/kiln/internal/atomicfile"
	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/imagefile"
)

// Forward is a host TCP port forwarded to a guest port.
type Forward struct{ Host, Guest int }

// HostServiceAddr is the address in the guest's user network behind which Config.HostServices
// are.
const HostServiceAddr = "10.0.2.100"

// Config describes one VM.
type Config struct {
	Image    string
	Persist  bool // write to the image; otherwise changes are discarded (-snapshot)
	MemoryMB int
	CPUs     int
	Forwards []Forward
	// HostServices let the guest reach services on the host's loopback: a connection to
	// HostServiceAddr:Guest goes to 127.0.0.1:Host (QEMU guestfwd, relayed by socat; the guest
	// reaches nothing else of the host).
	HostServices []Forward
	Ignition     string // a per-node config passed by fw_cfg as opt/com.coreos/config
	// LAN, when not 0, adds a second interface on a private Ethernet segment shared by every
	// VM on this machine given the same number: QEMU socket multicast (group LANGroup, UDP
	// port LAN) bound to 127.0.0.1, so the segment never leaves the host.
	LAN     int
	MAC     string // that interface's MAC address; default derived from the image path
	Accel   string // auto (default), kvm or tcg
	Serial  string // chardev for the serial console: "stdio" (default) or e.g. "file:/tmp/x"
	Monitor bool   // multiplex the QEMU monitor on stdio (Ctrl-A c), for interactive use
	// Kubeconfig, when set, is a host file the control plane's admin kubeconfig is written to
	// (owner-only, pointing at the forwarded API port on 127.0.0.1) whenever the node sends one
	// on its KubeconfigPort.
	Kubeconfig string
	// Disks are further disk images (raw, qcow2, vmdk or vhd by their name), attached read-only
	// after Image as more virtio disks: a stick with a kiln-config partition, say. "new:SIZE"
	// (e.g. new:8G) is a blank writable raw disk of SIZE instead, made in the VM's private
	// directory and gone when it stops: a target for an installer; "rw:PATH" attaches PATH
	// writable, to be kept.
	Disks []string
	// Image may also be a live medium kiln writes: an iso, attached as a CD (or, with USB, as
	// a USB stick, as the same file written to one boots), or a pxe directory, booted as a PXE
	// server would (its kernel, both initramfs images and its cmdline, plus Append).
	USB    bool
	Append []string
	// SecureBoot boots OVMF's Secure Boot firmware (SMM, a secure flash) with a variable store
	// in setup mode: systemd-boot enrols an image's keys on its first boot. Vars, when set, is
	// the variable store to use and keep (made from the template when it does not exist), so
	// that enrolled keys stay for the next run.
	SecureBoot bool
	Vars       string
}

// Live media kinds of Config.Image.
const (
	MediumISO = "iso"
	MediumPXE = "pxe"
)

// Medium says whether image is a live medium: an iso (ISO 9660 at its start) or a pxe
// directory (vmlinuz, initrd.img, root.img, cmdline); "" for a disk image.
func Medium(image string) (string, error) {
	st, err := os.Stat(image)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		for _, f := range pxeFiles {
			if _, err := os.Stat(filepath.Join(image, f)); err != nil {
				return "", fmt.Errorf("%s is a directory but not a pxe output (no %s)", image, f)
			}
		}
		return MediumPXE, nil
	}
	if filepath.Ext(image) != ".iso" {
		return "", nil
	}
	f, err := os.Open(image)
	if err != nil {
		return "", err
	}
	defer f.Close()
	pvd := make([]byte, 6)
	if _, err := f.ReadAt(pvd, 32768); err != nil || string(pvd[1:]) != "CD001" {
		return "", fmt.Errorf("%s: not an ISO 9660 image", image)
	}
	return MediumISO, nil
}

// pxeFiles are what a pxe directory must hold (kiln's disk package writes them).
var pxeFiles = []string{"vmlinuz", "initrd.img", "root.img", "cmdline"}

// LANGroup is the multicast group of private segments.
const LANGroup = "230.0.0.1"

// QEMU is the emulator binary kiln runs.
const QEMU = "qemu-system-x86_64"

// firmware pairs are searched in order (Debian's ovmf package, then Fedora's edk2-ovmf).
var firmware = [][2]string{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
}

// secureFirmware is Debian's OVMF built with Secure Boot and SMM; its variable store template
// holds no keys (setup mode).
var secureFirmware = [2]string{"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"}

// SecureFirmware returns the Secure Boot firmware and its variable-store template.
func SecureFirmware() (code, vars string, err error) {
	for _, f := range secureFirmware {
		if _, err := os.Stat(f); err != nil {
			return "", "", fmt.Errorf("no Secure Boot firmware (%s): install it with `apt-get install ovmf`", f)
		}
	}
	return secureFirmware[0], secureFirmware[1], nil
}

// Firmware returns the OVMF code and variable-store template.
func Firmware() (code, vars string, err error) {
	for _, f := range firmware {
		if _, err := os.Stat(f[0]); err == nil {
			if _, err := os.Stat(f[1]); err == nil {
				return f[0], f[1], nil
			}
		}
	}
	return "", "", fmt.Errorf("no UEFI firmware found (looked for %s): install it with `apt-get install ovmf`", firmware[0][0])
}

// Check reports what is missing to run VMs, with the package to install.
func Check() error {
	if _, err := exec.LookPath(QEMU); err != nil {
		return fmt.Errorf("%s not found: install it with `apt-get install qemu-system-x86`", QEMU)
	}
	_, _, err := Firmware()
	return err
}

var kvmOnce struct {
	sync.Once
	ok  bool
	why string
}

// KVMUsable reports whether KVM can run OVMF here. /dev/kvm may exist and still fail on the
// firmware's first instructions (nested virtualisation without some CPU features), so it boots
// the firmware under KVM for a moment and watches for QEMU's "KVM internal error".
func KVMUsable() (bool, string) {
	kvmOnce.Do(func() { kvmOnce.ok, kvmOnce.why = probeKVM() })
	return kvmOnce.ok, kvmOnce.why
}

func probeKVM() (bool, string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, "/dev/kvm: " + err.Error()
	}
	f.Close()
	code, _, err := Firmware()
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, QEMU, "-machine", "q35", "-accel", "kvm", "-m", "128", "-display", "none",
		"-drive", "if=pflash,format=raw,readonly=on,file="+code, "-serial", "none", "-monitor", "none", "-nodefaults")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if msg := stderr.String(); strings.Contains(msg, "KVM internal error") || strings.Contains(msg, "failed to initialize kvm") {
		return false, "KVM cannot run the firmware on this machine"
	}
	if ctx.Err() == nil && err != nil {
		return false, "KVM probe: " + strings.TrimSpace(stderr.String())
	}
	return true, ""
}

// Accel resolves c.Accel; notice is a line for people when KVM was wanted and is not usable.
func (c Config) accel() (accel string, notice string) {
	switch c.Accel {
	case "kvm", "tcg":
		return c.Accel, ""
	}
	if ok, why := KVMUsable(); ok {
		return "kvm", ""
	} else {
		return "tcg", "kiln: KVM not usable (" + why + "); using TCG software emulation, which is slower"
	}
}

// Command builds the QEMU command for c. The returned cleanup removes the VM's private copy of
// the firmware variables.
func Command(ctx context.Context, c Config, stdout, stderr io.Writer) (*exec.Cmd, func(), error) {
	if err := Check(); err != nil {
		return nil, nil, err
	}
	medium, err := Medium(c.Image)
	if err != nil {
		return nil, nil, fmt.Errorf("disk image: %w", err)
	}
	formats, blanks := map[string]string{}, map[int]int64{}
	for i, d := range append([]string{c.Image}, c.Disks...) {
		if i == 0 && medium != "" {
			continue
		}
		if i > 0 && strings.HasPrefix(d, BlankDisk) {
			n, err := blankSize(d)
			if err != nil {
				return nil, nil, fmt.Errorf("extra disk %q: %w", d, err)
			}
			blanks[i-1] = n
			continue
		}
		d = strings.TrimPrefix(d, WritableDisk)
		f, err := imagefile.Format(d)
		if err != nil && i == 0 {
			return nil, nil, fmt.Errorf("disk image: %w", err)
		} else if err != nil {
			return nil, nil, fmt.Errorf("extra disk: %w", err)
		}
		formats[d] = imagefile.QEMU(f)
	}
	code, varsTemplate, _ := Firmware()
	if c.SecureBoot {
		if code, varsTemplate, err = SecureFirmware(); err != nil {
			return nil, nil, err
		}
	}
	dir, cleanup, err := atomicfile.TempDir("", "kiln-vm-")
	if err != nil {
		return nil, nil, err
	}
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	c.Disks = slices.Clone(c.Disks)
	for i, n := range blanks {
		p := filepath.Join(dir, fmt.Sprintf("blank%d.raw", i))
		if err := makeBlank(p, n); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("making blank disk %q: %w", c.Disks[i], err)
		}
		c.Disks[i], formats[p] = p, "raw"
	}
	if err := varStore(varsTemplate, vars, c.Vars); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("firmware variables: %w", err)
	}
	var boot []string
	switch medium {
	case MediumISO:
		boot = isoArgs(c)
	case MediumPXE:
		if boot, err = pxeArgs(c, dir); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	if _, err := exec.LookPath("socat"); err != nil && len(c.HostServices) > 0 {
		cleanup()
		return nil, nil, errors.New("reaching host services from the guest needs socat: apt-get install socat")
	}
	accel, notice := c.accel()
	if notice != "" && stderr != nil {
		fmt.Fprintln(stderr, notice)
	}
	if c.Kubeconfig != "" {
		hostPort, err := c.APIForward()
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		stop, once := make(chan struct{}), sync.Once{}
		go exportKubeconfig(stop, kubeconfigPortFile(vars), c.Kubeconfig, hostPort)
		removeDir := cleanup
		cleanup = func() { once.Do(func() { close(stop); removeDir() }) }
	}
	cmd := exec.CommandContext(ctx, QEMU, args(c, accel, code, vars, formats, boot)...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, cleanup, nil
}

// args are QEMU's arguments for c; formats holds QEMU's format of each disk image.
func args(c Config, accel, code, vars string, formats map[string]string, boot []string) []string {
	mem, cpus := c.MemoryMB, c.CPUs
	if mem == 0 {
		mem = 2048
	}
	if cpus == 0 {
		cpus = 2
	}
	drive := fmt.Sprintf("file=%s,format=%s,if=virtio,cache=unsafe", c.Image, formats[c.Image])
	if !c.Persist {
		drive += ",snapshot=on"
	}
	netdev := "user,id=net0,restrict=on"
	for _, f := range c.Forwards {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.Host, f.Guest)
	}
	for _, f := range c.HostServices {
		// cmd: runs the relay for each connection (a tcp: chardev would carry one only)
		netdev += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:socat - TCP:127.0.0.1:%d", HostServiceAddr, f.Guest, f.Host)
	}
	serial := c.Serial
	if serial == "" {
		serial = "stdio"
	}
	machine := "q35"
	if c.SecureBoot { // the variable store is only writable from SMM
		machine += ",smm=on"
	}
	a := []string{
		"-machine", machine, "-accel", accelOption(accel), "-cpu", cpuModel(accel), "-smp", fmt.Sprint(cpus), "-m", fmt.Sprint(mem),
		"-nodefaults", "-display", "none", "-no-user-config",
		"-drive", "if=pflash,format=raw,readonly=on,file=" + code,
		"-drive", "if=pflash,format=raw,file=" + vars,
	}
	if c.SecureBoot {
		a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	if boot == nil {
		boot = []string{"-drive", drive}
	}
	a = append(a, boot...)
	a = append(a, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0", "-device", "virtio-rng-pci")
	if c.Monitor && serial == "stdio" {
		a = append(a, "-serial", "mon:stdio")
	} else {
		a = append(a, "-serial", serial, "-monitor", "none")
	}
	if c.LAN != 0 {
		mac := c.MAC
		if mac == "" {
			sum := sha256.Sum256([]byte(c.Image))
			mac = fmt.Sprintf("52:54:00:%02x:%02x:%02x", sum[0], sum[1], sum[2])
		}
		a = append(a, "-netdev", fmt.Sprintf("socket,id=lan,mcast=%s:%d,localaddr=127.0.0.1", LANGroup, c.LAN),
			"-device", "virtio-net-pci,netdev=lan,mac="+mac)
	}
	for _, d := range c.Disks {
		ro := ",readonly=on"
		if p, ok := strings.CutPrefix(d, WritableDisk); ok {
			d, ro = p, ""
		} else if filepath.Dir(d) == filepath.Dir(vars) { // a blank disk of this VM's own
			ro = ",cache=unsafe"
		}
		a = append(a, "-drive", fmt.Sprintf("file=%s,format=%s,if=virtio%s", d, formats[d], ro))
	}
	if c.Ignition != "" {
		a = append(a, "-fw_cfg", "name="+guestlink.FwCfgConfig+",file="+c.Ignition)
	}
	if c.Kubeconfig != "" {
		a = append(a, "-device", "virtio-serial-pci,id=vser0", "-chardev", "file,id=kubeconfig,path="+kubeconfigPortFile(vars),
			"-device", "virtserialport,bus=vser0.0,chardev=kubeconfig,name="+guestlink.KubeconfigPort)
	}
	return a
}

// isoArgs attach an iso read-only as a CD on the AHCI controller, or as a USB stick.
func isoArgs(c Config) []string {
	if c.USB {
		return []string{"-device", "qemu-xhci,id=xhci", "-drive", "if=none,id=stick,format=raw,readonly=on,file=" + c.Image,
			"-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0"}
	}
	return []string{"-drive", "if=none,id=cd0,media=cdrom,readonly=on,file=" + c.Image, "-device", "ide-cd,drive=cd0,bootindex=0"}
}

// pxeArgs boot a pxe directory's kernel with its initramfs and root.img, one after the other
// as a boot loader hands them over (QEMU takes one initrd file: they are joined in the VM's
// directory), and its command line plus c.Append.
func pxeArgs(c Config, dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(c.Image, "cmdline"))
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(dir, "initrd")
	if err := joinFiles(initrd, filepath.Join(c.Image, "initrd.img"), filepath.Join(c.Image, "root.img")); err != nil {
		return nil, fmt.Errorf("joining the pxe initramfs images: %w", err)
	}
	cmdline := strings.Join(append(strings.Fields(string(b)), c.Append...), " ")
	return []string{"-kernel", filepath.Join(c.Image, "vmlinuz"), "-initrd", initrd, "-append", cmdline}, nil
}

// joinFiles writes srcs one after the other into dst, each padded to 4 bytes as the kernel
// wants concatenated initramfs archives.
func joinFiles(dst string, srcs ...string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	n := int64(0)
	for _, src := range srcs {
		if pad := (4 - n%4) % 4; pad > 0 {
			if _, err := out.Write(make([]byte, pad)); err != nil {
				return err
			}
			n += pad
		}
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		m, err := io.Copy(out, in)
		in.Close()
		if err != nil {
			return err
		}
		n += m
	}
	return out.Close()
}

// kubeconfigPortFile is where QEMU writes what the guest sends on its KubeconfigPort: in the
// VM's private directory, beside its firmware variables.
func kubeconfigPortFile(vars string) string {
	return filepath.Join(filepath.Dir(vars), "kubeconfig.port")
}

// tcgCodeBufferMiB is the size of TCG's translated-code buffer. QEMU's default (1 GiB) holds
// about 60 MB of guest code; a control plane runs a dozen large Go programs (kube-apiserver,
// kubelet, etcd, containerd and its shims, kubeadm, runc...) whose hot code is more than that,
// so QEMU kept flushing every translation and re-translating (three full flushes in the first
// 18 minutes of a control plane's first boot, measured with the monitor's "info jit"). The
// buffer is host memory committed only as it fills.
const tcgCodeBufferMiB = 2048

func accelOption(accel string) string {
	if accel == "tcg" {
		return fmt.Sprintf("tcg,tb-size=%d", tcgCodeBufferMiB)
	}
	return accel
}

func cpuModel(accel string) string {
	if accel == "kvm" {
		return "host"
	}
	return "max"
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// makeBlank makes a sparse file of n bytes at path.
func makeBlank(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WritableDisk prefixes a Config.Disks entry attached writable (rw:PATH): a disk an
// installer writes that is booted afterwards.
const WritableDisk = "rw:"

// BlankDisk prefixes a Config.Disks entry that asks for a blank disk: new:SIZE.
const BlankDisk = "new:"

// blankSize reads the size of "new:SIZE": a whole number of bytes with an optional binary
// unit K, M, G or T (8G is 8 GiB), at least 1 MiB and at most 64 TiB, in whole 512-byte
// sectors.
func blankSize(d string) (int64, error) {
	s := strings.TrimPrefix(d, BlankDisk)
	mult := int64(1)
	if n := len(s); n > 0 {
		if i := strings.IndexByte("KMGT", s[n-1]); i >= 0 {
			mult, s = int64(1)<<(10*(i+1)), s[:n-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	const most = 64 << 40
	if err != nil || n <= 0 || n > most/mult || n*mult < 1<<20 || n*mult%512 != 0 {
		return 0, fmt.Errorf("want new:SIZE with SIZE from 1M to 64T, e.g. new:8G")
	}
	return n * mult, nil
}

// varStore puts the VM's variable store at vars: a copy of the template, or, with keep, a
// link to keep (made from the template when it does not exist yet), which the VM then writes.
func varStore(template, vars, keep string) error {
	if keep == "" {
		return copyFile(template, vars)
	}
	abs, err := filepath.Abs(keep)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		b, err := os.ReadFile(template)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(abs, b, 0o600); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return os.Symlink(abs, vars)
}
