// Package plan turns a validated recipe and its pinned inputs into a Plan: every input with its
// digest, every file to write, the partition table and the kernel command line. It is pure: no
// I/O, and it imports no later stage. `kiln plan` prints a Plan; `kiln build` executes it.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/kubenode"
	"github.com/kiln-dev/kiln/internal/recipe"
	"github.com/kiln-dev/kiln/internal/verity"
)

// Partition type GUIDs from the Discoverable Partitions Specification.
const (
	TypeESP     = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeRootX64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeVar     = "4D21B016-B534-45C2-A9FB-5C16E091FD2D"
)

// Partition labels; the Go init finds partitions by type and label.
const (
	LabelESP   = "ESP"
	LabelRootA = "root-a"
	LabelRootB = "root-b"
	LabelVar   = "var"
)

// RootHashMade stands for the root slot's dm-verity root hash on the plan's command lines; the
// disk stage, which makes the tree, writes the hash there.
const RootHashMade = "@root-hash"

// Verity is the root slot's dm-verity hash tree (internal/verity).
type Verity struct {
	Hash      string `json:"hash"`
	BlockSize int    `json:"blockSize"` // of data and hash blocks
	Area      string `json:"area"`      // where the superblock and the tree are
}

// SectorSize is the logical sector size of the images kiln writes.
const SectorSize = 512

const align = recipe.MiB

// DefaultCmdline is what kiln always puts on the kernel command line before the recipe's own
// parameters: both consoles (serial last, so it is /dev/console), the root slot, and systemd
// settings a read-only image needs.
var DefaultCmdline = []string{"console=tty0", "console=ttyS0,115200", "ro", "panic=10", "systemd.gpt_auto=0", "systemd.show_status=true"}

// MaxCmdline is the longest kernel command line x86-64 Linux keeps (COMMAND_LINE_SIZE, 2048
// bytes with the terminating NUL); it cuts a longer one short without a word.
const MaxCmdline = 2047

// Input is one pinned OCI image.
type Input struct {
	Role   string `json:"role"`   // base, layers[0], …, preload
	Ref    string `json:"ref"`    // as written
	Digest string `json:"digest"` // manifest digest
	From   string `json:"from"`   // where it is read from
}

// Overlay is a directory laid over the root, with the digest of its whole tree.
type Overlay struct {
	Dir    string `json:"dir"`
	SHA256 string `json:"sha256"`
}

// File is one file written into the root after the overlays.
type File struct {
	Path   string `json:"path"`
	Mode   uint32 `json:"mode"` // permission bits (decimal in JSON)
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Source string `json:"source,omitempty"`  // a host path, or "" for inline content
	Inline []byte `json:"content,omitempty"` // inline content (base64 in JSON)
	Link   string `json:"link,omitempty"`    // a symlink's target instead of content
	Made   string `json:"made,omitempty"`    // made by a later stage of the build from the inputs
	SHA256 string `json:"sha256,omitempty"`
}

// What a later stage makes (File.Made).
const (
	// The digest of the set of inputs with role preload, which the build puts into containerd's
	// store on the var file system (VarFS); the first-boot program compares the two.
	MadePreloadDigest = "preload-digest"
)

// MadePath is the path of the plan's file made as what, or "" when it has none.
func (pl Plan) MadePath(what string) string {
	for _, f := range pl.Files {
		if f.Made == what {
			return f.Path
		}
	}
	return ""
}

// Partition is one GPT entry. Start and Size are in bytes.
type Partition struct {
	Number  int    `json:"number"`
	Label   string `json:"label"`
	Type    string `json:"type"`
	GUID    string `json:"guid"`
	Start   int64  `json:"start"`
	Size    int64  `json:"size"`
	Content string `json:"content"` // what goes in it, for people
}

// Output is one artefact to write.
type Output struct {
	Format string `json:"format"`
	Path   string `json:"path"` // pxe: a directory
	// Live media (iso, pxe) only: the kernel command line they boot by default (live, or the
	// installer when the recipe gives an install target), and for an iso its El Torito boot
	// image's files.
	Cmdline string    `json:"cmdline,omitempty"`
	ESP     []ESPFile `json:"esp,omitempty"`
}

// Plan is everything a build writes, as data. Its JSON form (kiln plan --output json) is a
// stable interface: field names change only with a new apiVersion of the recipe format.
type Plan struct {
	Name            string      `json:"name"`
	Recipe          string      `json:"recipe"`
	RecipeSHA256    string      `json:"recipeSHA256"`
	ID              string      `json:"id"` // digest of every input; seeds the GUIDs
	SourceDateEpoch int64       `json:"sourceDateEpoch"`
	Inputs          []Input     `json:"inputs"`
	Overlays        []Overlay   `json:"overlays"`
	Kubernetes      *Kubernetes `json:"kubernetes,omitempty"`
	Node            Node        `json:"node"`  // effective node settings, kiln's own included
	Files           []File      `json:"files"` // written into the root after the overlays
	InitSHA256      string      `json:"initSHA256"`
	Initrd          Initrd      `json:"initrd"`
	ESP             []ESPFile   `json:"esp"`
	Cmdline         string      `json:"cmdline"`
	RootSlot        string      `json:"rootSlot"`
	DiskSize        int64       `json:"diskSize"`
	DiskGUID        string      `json:"diskGUID"`
	Partitions      []Partition `json:"partitions"`
	VarFS           VarFS       `json:"varFS"`
	Outputs         []Output    `json:"outputs"`
	// SecureBoot, when set, says the ESP's EFI binaries are signed with the owner's db key and
	// that systemd-boot enrols the owner's keys on a machine in setup mode.
	SecureBoot *SecureBoot `json:"secureBoot,omitempty"`
	// Verity, when set, says the root slot carries a dm-verity hash tree after its layers and
	// the UKI's command line the root hash.
	Verity *Verity `json:"verity,omitempty"`
	// LiveLabel names the live media's root (an ISO's volume ID; kiln.live= on their command
	// line), when the plan writes one.
	LiveLabel string `json:"liveLabel,omitempty"`
}

// VarFS is the ext4 file system the build writes into the var partition: the root's /var and,
// for a Kubernetes node, containerd's store holding the preloaded images (unpacked, in the
// k8s.io namespace). Its label says whether the node has booted it: FreshLabel until the first
// boot has grown it to the disk and applied the node's config, guestlink.VarLabel after.
type VarFS struct {
	UUID       string `json:"uuid"` // also its directory hash seed
	FreshLabel string `json:"freshLabel"`
	Preload    int    `json:"preload"` // how many images its containerd store holds
}

// Kubernetes is what the build checks a Kubernetes node's binaries and images against.
type Kubernetes struct {
	Version  string `json:"version"`
	Role     string `json:"role"`
	EtcdMode string `json:"etcdMode"`
}

// Pinned is what a build learnt about the inputs before planning: their digests.
type Pinned struct {
	Images     []Input // base first, then layers in recipe order, then preloaded images
	Overlays   []Overlay
	Files      []File
	InitSHA256 string
	Init       string // host path of kiln-init, which an updatable image carries as kiln-update
	// SourceDateEpoch is the timestamp written into the image; the caller takes it from
	// $SOURCE_DATE_EPOCH or derives it from the inputs.
	SourceDateEpoch int64
	// SecureBoot, when the build signs for Secure Boot, holds the digests of the keys' public
	// parts (the private keys never reach the plan).
	SecureBoot *SecureBoot
}

// Make builds the plan for r with its pinned inputs, writing to output.
func Make(r *recipe.Loaded, p Pinned, output string) (Plan, error) {
	eff := r.Recipe.Node
	var k8s *Kubernetes
	var k8sFiles []File
	if k := r.Recipe.Kubernetes; k != nil {
		eff = kubenode.Node(eff, *k)
		var err error
		if k8s, k8sFiles, err = kubernetesPlan(*k); err != nil {
			return Plan{}, err
		}
	}
	files := append(nodeFiles(eff), k8sFiles...)
	if k := r.Recipe.Kernel; k.UKI && k.Verity && p.Init != "" {
		files = append(files, updateFiles(p.Init, p.InitSHA256)...)
	}
	pl := Plan{
		Name:            r.Recipe.Metadata.Name,
		Recipe:          r.File,
		RecipeSHA256:    r.SHA256,
		SourceDateEpoch: p.SourceDateEpoch,
		Inputs:          p.Images,
		Overlays:        p.Overlays,
		Kubernetes:      k8s,
		Node:            describeNode(r.Recipe.Node, eff),
		Files:           append(files, p.Files...), // the recipe's own files win
		InitSHA256:      p.InitSHA256,
		Initrd:          InitrdModules(),
		RootSlot:        LabelRootA,
	}
	pl.Node.Units = enabledUnits(pl.Files)
	pl.ID = pl.inputDigest()
	// A UKI names no slot: kiln-init boots the one its entry's file name says.
	var own []string
	if !r.Recipe.Kernel.UKI {
		own = append(own, "kiln.root="+pl.RootSlot)
	}
	if r.Recipe.Kernel.Verity {
		pl.Verity = &Verity{Hash: verity.HashName, BlockSize: verity.BlockSize, Area: "appended to the slot's data"}
		own = append(own, verity.CmdlineKey+"="+RootHashMade)
	}
	pl.Cmdline = cmdline(strings.Join(own, " "), r.Recipe.Kernel.Cmdline)
	pl.ESP = espFiles(pl.Name, pl.RootSlot, pl.Cmdline, pl.osRelease(), r.Recipe.Kernel.UKI)
	if p.SecureBoot != nil {
		if !r.Recipe.Kernel.UKI {
			return Plan{}, r.Problem("kernel.uki", "signing for Secure Boot needs kernel.uki: true (a boot entry's kernel command line and initramfs are not signed)")
		}
		pl.SecureBoot = p.SecureBoot
		pl.ESP = secureBootESP(pl.ESP, *p.SecureBoot)
	}
	pl.DiskSize, pl.Partitions = layout(r.Recipe.Disk, pl.ID, pl.Verity != nil)
	pl.DiskGUID = derivedGUID(pl.ID, "disk")
	pl.VarFS = VarFS{UUID: strings.ToLower(derivedGUID(pl.imageDigest(), "var-fs")), FreshLabel: guestlink.VarFreshLabel, Preload: countRole(pl.Inputs, "preload")}
	pl.Outputs = outputs(r.Recipe.Outputs, output)
	for i, o := range r.Recipe.Outputs {
		if contains(recipe.LiveFormats, o.Format) {
			pl.LiveLabel = "KILN_" + strings.ToUpper(pl.ID[:12])
			pl.Outputs[i] = liveOutput(pl, pl.Outputs[i], r.Recipe.Kernel.Cmdline, o.Install)
		}
	}
	for _, c := range append([]string{pl.Cmdline}, outputCmdlines(pl.Outputs)...) {
		if n := len(strings.Replace(c, RootHashMade, strings.Repeat("0", 2*sha256.Size), 1)); n > MaxCmdline {
			return Plan{}, r.Problem("kernel.cmdline", "the kernel command line would be %d bytes with kiln's own parameters; Linux keeps %d and drops the rest", n, MaxCmdline)
		}
	}
	return pl, nil
}

// osRelease is what a UKI's os-release says of the image for updates: its name, its version
// (the plan's ID, short) and, for a Kubernetes node, the Kubernetes version.
func (pl Plan) osRelease() string {
	s := "KILN_IMAGE=" + pl.Name + "\nKILN_IMAGE_VERSION=" + pl.ID[:12] + "\n"
	if pl.Kubernetes != nil {
		s += "KILN_KUBERNETES_VERSION=" + pl.Kubernetes.Version + "\n"
	}
	return s
}

// cmdline is kiln's kernel command line: its defaults, then kiln's own parameter, then the
// recipe's.
func cmdline(own string, extra []string) string {
	parts := append([]string{}, DefaultCmdline...)
	if own != "" {
		parts = append(parts, own)
	}
	return strings.Join(append(parts, extra...), " ")
}

func outputCmdlines(os []Output) []string {
	var res []string
	for _, o := range os {
		if o.Cmdline != "" {
			res = append(res, o.Cmdline)
		}
	}
	return res
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kubernetesPlan is what a kubernetes section adds: kubenode's files and the preload digest
// a later stage writes, and what the node's binaries are checked against.
func kubernetesPlan(k recipe.Kubernetes) (*Kubernetes, []File, error) {
	fs, err := kubenode.Files(k)
	if err != nil {
		return nil, nil, err
	}
	var files []File
	for _, f := range fs {
		if f.Link != "" {
			files = append(files, File{Path: f.Path, Mode: f.Mode, Link: f.Link})
		} else {
			files = append(files, inline(f.Path, f.Mode, string(f.Content)))
		}
	}
	files = append(files, File{Path: kubenode.PreloadDigestFile, Mode: 0o644, Made: MadePreloadDigest})
	d := kubenode.Defaults(k)
	return &Kubernetes{Version: d.Version, Role: d.Role, EtcdMode: d.Etcd.Mode}, files, nil
}

func (pl Plan) inputDigest() string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\ninit %s\nepoch %d\n", pl.RecipeSHA256, pl.InitSHA256, pl.SourceDateEpoch)
	for _, in := range pl.Inputs {
		fmt.Fprintf(h, "image %s %s\n", in.Role, in.Digest)
	}
	for _, o := range pl.Overlays {
		fmt.Fprintf(h, "overlay %s\n", o.SHA256)
	}
	for _, f := range pl.Files {
		fmt.Fprintf(h, "file %s %s\n", f.Path, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// imageDigest is a sha256 of the plan's images and epoch alone: the var file system's identity
// seed, so that changing a file or a setting does not change its bytes (and the build cache
// keeps it).
func (pl Plan) imageDigest() string {
	h := sha256.New()
	fmt.Fprintf(h, "epoch %d\n", pl.SourceDateEpoch)
	for _, in := range pl.Inputs {
		fmt.Fprintf(h, "image %s %s\n", in.Role, in.Digest)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// layout places the partitions, 1 MiB aligned: ESP, root-a, root-b, var (the rest).
func layout(d recipe.Disk, id string, verity bool) (int64, []Partition) {
	total, esp, root, vr := d.Sizes()
	rootA := "squashfs root (read-only)"
	if verity {
		rootA += ", its dm-verity hash tree after it"
	}
	parts := []Partition{
		{Label: LabelESP, Type: TypeESP, Size: esp, Content: "FAT32: systemd-boot, loader entries, kernel, initrd"},
		{Label: LabelRootA, Type: TypeRootX64, Size: root, Content: rootA},
		{Label: LabelRootB, Type: TypeRootX64, Size: root, Content: "empty: the next root for A/B updates"},
		{Label: LabelVar, Type: TypeVar, Content: "ext4 made by the build: the image's /var and containerd's store with the preloaded images; grown to the disk at first boot"},
	}
	start := align
	for i := range parts {
		parts[i].Number = i + 1
		parts[i].Start = start
		parts[i].GUID = derivedGUID(id, parts[i].Label)
		if parts[i].Label == LabelVar {
			parts[i].Size = total - align - start // leave room for the backup GPT
			if vr > 0 && vr < parts[i].Size {
				parts[i].Size = vr
			}
		}
		start += parts[i].Size
	}
	return total, parts
}

func countRole(in []Input, role string) int {
	n := 0
	for _, i := range in {
		if i.Role == role {
			n++
		}
	}
	return n
}

// derivedGUID makes a stable, random-looking GUID (RFC 4122 version 4 layout) from id and what.
func derivedGUID(id, what string) string {
	sum := sha256.Sum256([]byte(id + "/" + what))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// outputs names each output: the raw image at path, every other format beside it with the
// same name and the format's extension (out/minimal.raw → out/minimal.qcow2; given
// out/minimal.qcow2, the raw image is out/minimal.raw).
func outputs(outs []recipe.Output, path string) []Output {
	if len(outs) == 0 {
		return []Output{{Format: "raw", Path: path}}
	}
	stem, raw := path, path
	switch ext := filepath.Ext(path); ext {
	case ".raw", ".img":
		stem = strings.TrimSuffix(path, ext)
	case ".qcow2", ".vmdk", ".vhd", ".iso", ".pxe": // -o out/x.qcow2: the raw image, if listed, is out/x.raw
		stem = strings.TrimSuffix(path, ext)
		raw = stem + ".raw"
	}
	var res []Output
	for _, o := range outs {
		p := raw
		if o.Format != "raw" {
			p = stem + "." + o.Format
		}
		res = append(res, Output{Format: o.Format, Path: p})
	}
	return res
}

// Output returns the output of the given format (false if the plan writes none).
func (pl Plan) Output(format string) (Output, bool) {
	for _, o := range pl.Outputs {
		if o.Format == format {
			return o, true
		}
	}
	return Output{}, false
}

// Partition returns the partition labelled label (the zero Partition if there is none).
func (pl Plan) Partition(label string) Partition {
	for _, p := range pl.Partitions {
		if p.Label == label {
			return p
		}
	}
	return Partition{}
}
