package vm

import (
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	a := strings.Join(args(Config{Image: "n.qcow2", Forwards: []Forward{{6443, 6443}, {2222, 22}}, Ignition: "n.ign",
		LAN: 42042, MAC: "52:54:00:00:10:11", Kubeconfig: "admin.conf", Disks: []string{"stick.raw", "more.qcow2"}}, "tcg", "CODE", "/vm/VARS"), " ")
	for _, want := range []string{
		"-accel tcg,tb-size=2048", "-cpu max", "-smp 2", "-m 2048",
		"if=pflash,format=raw,readonly=on,file=CODE", "if=pflash,format=raw,file=/vm/VARS",
		"file=n.qcow2,format=qcow2,if=virtio,cache=unsafe,snapshot=on",
		"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:6443-:6443,hostfwd=tcp:127.0.0.1:2222-:22",
		"-serial stdio -monitor none", "-fw_cfg name=opt/com.coreos/config,file=n.ign",
		"-netdev socket,id=lan,mcast=230.0.0.1:42042,localaddr=127.0.0.1 -device virtio-net-pci,netdev=lan,mac=52:54:00:00:10:11",
		"-drive file=stick.raw,format=raw,if=virtio,readonly=on -drive file=more.qcow2,format=qcow2,if=virtio,readonly=on",
		"-chardev file,id=kubeconfig,path=/vm/kubeconfig.port -device virtserialport,bus=vser0.0,chardev=kubeconfig,name=dev.kiln.kubeconfig",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("qemu args lack %q:\n%s", want, a)
		}
	}
	p := strings.Join(args(Config{Image: "n.raw", Persist: true, Monitor: true, CPUs: 4, MemoryMB: 4096}, "kvm", "C", "V"), " ")
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
