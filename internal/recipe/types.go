// Package recipe owns kiln's recipe format: the Go types of a NodeImage recipe, strict loading
// from YAML with every problem located (file:line:col: field.path: message), validation, and the
// JSON Schema generated from the same types.
package recipe

// APIVersion is the only recipe version this build of kiln reads (and the one it writes).
const APIVersion = "kiln.dev/v1alpha1"

// Kind is the kind of document a recipe is.
const Kind = "NodeImage"

// Recipe is a declarative description of one node image.
type Recipe struct {
	APIVersion string   `yaml:"apiVersion" doc:"Recipe format version; must be kiln.dev/v1alpha1."`
	Kind       string   `yaml:"kind" doc:"Must be NodeImage."`
	Metadata   Metadata `yaml:"metadata" doc:"Names the image."`
	Base       string   `yaml:"base" doc:"OCI image holding the OS: kernel in /boot, modules in /lib/modules, systemd and systemd-boot's EFI binary. A registry reference (name[:tag][@sha256:…]), oci-layout:DIR[:tag|@digest] or docker-archive:FILE[:tag]."`
	Layers     []string `yaml:"layers" doc:"More OCI images flattened on top of base, in order (whiteouts honoured)."`
	Overlays   []string `yaml:"overlays" doc:"Directories laid over the root after the layers, in order; relative paths are relative to the recipe's directory."`
	Files      []File   `yaml:"files" doc:"Single files written last."`
	Kernel     Kernel   `yaml:"kernel" doc:"Kernel settings."`
	Disk       Disk     `yaml:"disk" doc:"Disk and partition sizes."`
	Outputs    []Output `yaml:"outputs" doc:"What to write; raw when empty."`
	Mirrors    []Mirror `yaml:"mirrors" doc:"Where to fetch images from instead of their canonical registries (air-gapped builds)."`
}

// Metadata names the image.
type Metadata struct {
	Name string `yaml:"name" doc:"Image name: lower-case letters, digits and dashes."`
}

// File is one file written into the root filesystem.
type File struct {
	Path    string `yaml:"path" doc:"Absolute path inside the image."`
	Content string `yaml:"content" doc:"Inline content (exclusive with source)."`
	Source  string `yaml:"source" doc:"File on the build host to copy (relative to the recipe's directory)."`
	Mode    string `yaml:"mode" doc:"Octal mode as a string, e.g. \"0644\" (default) or \"4755\"."`
	UID     *int   `yaml:"uid" doc:"Owner uid (default 0)."`
	GID     *int   `yaml:"gid" doc:"Owner gid (default 0)."`
}

// Kernel holds the kernel settings.
type Kernel struct {
	Cmdline []string `yaml:"cmdline" doc:"Extra kernel command-line parameters, appended to kiln's own."`
}

// Disk holds the partition sizes. Sizes are strings like 4GiB, 300MiB or 1G.
type Disk struct {
	Size string `yaml:"size" doc:"Total disk size (default 4GiB)."`
	ESP  string `yaml:"esp" doc:"EFI system partition size (default and minimum 300MiB)."`
	Root string `yaml:"root" doc:"Size of each of the two root slots, A and B (default 1GiB)."`
	Var  string `yaml:"var" doc:"Initial var partition size (default: the rest; it grows to fill the disk at first boot)."`
}

// Output is one artefact written from the disk image.
type Output struct {
	Format string `yaml:"format" doc:"raw (more formats later)." enum:"raw"`
}

// Mirror sends images whose name starts with Prefix to Location.
type Mirror struct {
	Prefix   string `yaml:"prefix" doc:"Canonical name prefix, e.g. registry.k8s.io or localhost/kiln."`
	Location string `yaml:"location" doc:"oci-layout:DIR (relative to the recipe) or a registry host[:port][/path]."`
}
