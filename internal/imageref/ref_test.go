package imageref

import "testing"

func TestParse(t *testing.T) {
	d := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in   string
		want Ref
	}{
		{"registry.k8s.io/pause:3.10", Ref{Transport: Registry, Name: "registry.k8s.io/pause:3.10", Tag: "3.10"}},
		{"debian:bookworm", Ref{Transport: Registry, Name: "index.docker.io/library/debian:bookworm", Tag: "bookworm"}},
		{"localhost:5000/a/b@" + d, Ref{Transport: Registry, Name: "localhost:5000/a/b", Digest: d}},
		{"quay.io/x/y:v1@" + d, Ref{Transport: Registry, Name: "quay.io/x/y:v1", Tag: "v1", Digest: d}},
		{"oci-layout:out/oci", Ref{Transport: OCILayout, Path: "out/oci"}},
		{"oci-layout:/abs/dir:v2", Ref{Transport: OCILayout, Path: "/abs/dir", Tag: "v2"}},
		{"oci-layout:dir@" + d, Ref{Transport: OCILayout, Path: "dir", Digest: d}},
		{"docker-archive:img.tar", Ref{Transport: DockerArchive, Path: "img.tar"}},
		{"docker-archive:img.tar:example.com/a:v1", Ref{Transport: DockerArchive, Path: "img.tar", Tag: "example.com/a:v1"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "debian", "a/b@sha256:xyz", "a/b@md5:" + d[7:], "oci-layout:", "oci-layout:dir:", "Upper/case:1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = nil error, want one", bad)
		}
	}
}

func TestCanonical(t *testing.T) {
	r, _ := Parse("registry.k8s.io/etcd:3.7.0-0")
	if got := r.Canonical(); got != "registry.k8s.io/etcd:3.7.0-0" {
		t.Errorf("Canonical() = %q", got)
	}
	if got := r.Repository(); got != "registry.k8s.io/etcd" {
		t.Errorf("Repository() = %q", got)
	}
}
