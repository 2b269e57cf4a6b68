package plan

import "embed"

//go:embed files/kiln-health.service files/kiln-bless.service
var updateUnits embed.FS

// Where an image that can be updated (a UKI and a verified root) carries kiln-update: the
// kiln-init binary, which is kiln-update when started by that name.
const (
	UpdateBinary = "/usr/lib/kiln/kiln-init"
	UpdateLink   = "/usr/bin/kiln-update"
)

// updateFiles are what kiln-update needs in the root: the program (kiln-init, whose bytes the
// plan pins) and the boot assessment's units, kiln-health enabled.
func updateFiles(initPath, initSHA256 string) []File {
	fs := []File{
		{Path: UpdateBinary, Mode: 0o755, Source: initPath, SHA256: initSHA256},
		{Path: UpdateLink, Mode: 0o777, Link: UpdateBinary},
	}
	for _, n := range []string{"kiln-health.service", "kiln-bless.service"} {
		b, err := updateUnits.ReadFile("files/" + n)
		if err != nil {
			panic(err) // embedded above
		}
		fs = append(fs, inline("/usr/lib/systemd/system/"+n, 0o644, string(b)))
	}
	for _, t := range []string{"multi-user.target.wants", "boot-complete.target.requires"} {
		fs = append(fs, File{Path: "/etc/systemd/system/" + t + "/kiln-health.service", Mode: 0o777, Link: "/usr/lib/systemd/system/kiln-health.service"})
	}
	return fs
}
