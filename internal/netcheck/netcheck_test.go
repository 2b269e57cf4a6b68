package netcheck

import (
	"net/netip"
	"strings"
	"testing"
)

// errText is err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestNames(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	dotted := func(n int) string { // a name of n characters: labels of 62 and a shorter last one
		name := long(1 + (n-1)%63)
		for len(name) < n {
			name = long(62) + "." + name
		}
		return name
	}
	tests := []struct {
		name  string
		check func(string) error
		in    string
		want  string // "" when valid
	}{
		{"label", Label, "cp-1", ""},
		{"label of 63", Label, long(63), ""},
		{"label of 64", Label, long(64), "a name of 64 characters is not a DNS label (at most 63)"},
		{"label upper case", Label, "Demo", `"Demo" is not a DNS label (lower-case letters, digits and '-', not at either end)`},
		{"label with a dot", Label, "a.b", `"a.b" is not a DNS label (lower-case letters, digits and '-', not at either end)`},
		{"label ending in a dash", Label, "a-", `"a-" is not a DNS label (lower-case letters, digits and '-', not at either end)`},
		{"empty label", Label, "", `"" is not a DNS label (lower-case letters, digits and '-', not at either end)`},
		{"subdomain", Subdomain, "cluster.local", ""},
		{"subdomain of 253", Subdomain, dotted(253), ""},
		{"subdomain of 254", Subdomain, dotted(254), "a name of 254 characters is not a DNS name (at most 253)"},
		{"subdomain with an empty label", Subdomain, "cluster..local", `"cluster..local" is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
		{"subdomain with a trailing dot", Subdomain, "cluster.local.", `"cluster.local." is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
		{"subdomain with a long label", Subdomain, long(64) + ".local", `"` + long(64) + `.local" is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
		{"subdomain with NUL", Subdomain, "a\x00b", `"a\x00b" is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
		{"hostname", Hostname, "node-1.example.org", ""},
		{"hostname of 64", Hostname, dotted(64), ""},
		{"hostname of 65", Hostname, dotted(65), "a host name of 65 characters is longer than the kernel's 64"},
		{"hostname of 255", Hostname, dotted(255), "a host name of 255 characters is longer than the kernel's 64"},
		{"hostname with a newline", Hostname, "a\nb", `"a\nb" is not a DNS name (labels of lower-case letters, digits and '-', at most 63 each, joined by dots)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errText(tt.check(tt.in)); got != tt.want {
				t.Errorf("check(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{"host:port", "10.10.0.10:6443", "10.10.0.10:6443", ""},
		{"https URL", "https://10.10.0.10:6443", "10.10.0.10:6443", ""},
		{"https URL with a slash", "https://api.example.org:443/", "api.example.org:443", ""},
		{"host alone", "api.example.org", "api.example.org:6443", ""},
		{"IPv4 alone", "10.0.0.1", "10.0.0.1:6443", ""},
		{"IPv6 with port", "[fd00::10]:6443", "[fd00::10]:6443", ""},
		{"IPv6 alone", "fd00::10", "[fd00::10]:6443", ""},
		{"IPv6 in brackets", "[fd00::10]", "[fd00::10]:6443", ""},
		{"IPv6 URL", "https://[fd00::10]:6443", "[fd00::10]:6443", ""},
		{"http", "http://10.0.0.1:6443", "", `"http://10.0.0.1:6443": the API is reached over https; give host:port or https://host:port`},
		{"tcp", "tcp://10.0.0.1:6443", "", `"tcp://10.0.0.1:6443": the API is reached over https; give host:port or https://host:port`},
		{"scheme twice", "https://https://10.10.0.10:6443", "", `"https://https://10.10.0.10:6443": an endpoint has no path, query or fragment`},
		{"path", "https://10.0.0.1:6443/api", "", `"https://10.0.0.1:6443/api": an endpoint has no path, query or fragment`},
		{"query", "https://10.0.0.1:6443?x=1", "", `"https://10.0.0.1:6443?x=1": an endpoint has no path, query or fragment`},
		{"fragment", "https://10.0.0.1:6443#x", "", `"https://10.0.0.1:6443#x": an endpoint has no path, query or fragment`},
		{"userinfo", "https://admin:secret@10.0.0.1:6443", "", `"https://admin:secret@10.0.0.1:6443": an endpoint carries no user information`},
		{"URL without port", "https://10.0.0.1", "", `"https://10.0.0.1": give the port, e.g. https://10.0.0.1:6443`},
		{"bad URL", "https://10.0.0.1:6443/%zz", "", `"https://10.0.0.1:6443/%zz" is not a URL such as https://10.0.0.10:6443`},
		{"port above 65535", "10.0.0.1:65536", "", `"10.0.0.1:65536": port "65536" is not a number from 1 to 65535`},
		{"port 0", "10.0.0.1:0", "", `"10.0.0.1:0": port "0" is not a number from 1 to 65535`},
		{"signed port", "10.0.0.1:+443", "", `"10.0.0.1:+443": port "+443" is not a number from 1 to 65535`},
		{"named port", "10.0.0.1:https", "", `"10.0.0.1:https": port "https" is not a number from 1 to 65535`},
		{"empty port", "10.0.0.1:", "", `"10.0.0.1:": port "" is not a number from 1 to 65535`},
		{"unspecified address", "0.0.0.0:6443", "", `"0.0.0.0:6443": 0.0.0.0 is not an address other machines can reach`},
		{"zone", "[fe80::1%eth0]:6443", "", `"[fe80::1%eth0]:6443": fe80::1%eth0 is not an address other machines can reach`},
		{"bad host", "api_server:6443", "", `"api_server:6443": host "api_server" is neither an IP address nor a DNS name`},
		{"empty", "", "", `"": host "" is neither an IP address nor a DNS name`},
		{"newline", "10.0.0.1:6443\n", "", `"10.0.0.1:6443\n": port "6443\n" is not a number from 1 to 65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Endpoint(tt.in)
			if got != tt.want || errText(err) != tt.err {
				t.Errorf("Endpoint(%q) = %q, %q; want %q, %q", tt.in, got, errText(err), tt.want, tt.err)
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct {
		name, in, host string
		port           int
		err            string
	}{
		{"name", "docker.io", "docker.io", 0, ""},
		{"name and port", "localhost:5000", "localhost", 5000, ""},
		{"IPv6 and port", "[fd00::1]:5000", "fd00::1", 5000, ""},
		{"dot-dot", "..", "", 0, `"..": host ".." is neither an IP address nor a DNS name`},
		{"path", "a/b", "", 0, `"a/b": host "a/b" is neither an IP address nor a DNS name`},
		{"port 0", "localhost:0", "", 0, `"localhost:0": port "0" is not a number from 1 to 65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, p, err := HostPort(tt.in)
			if h != tt.host || p != tt.port || errText(err) != tt.err {
				t.Errorf("HostPort(%q) = %q, %d, %q; want %q, %d, %q", tt.in, h, p, errText(err), tt.host, tt.port, tt.err)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct{ name, in, err string }{
		{"IPv4", "10.244.0.0/16", ""},
		{"IPv6", "fd00:10:244::/56", ""},
		{"no length", "10.244.0.0", `"10.244.0.0" is not a CIDR such as 10.244.0.0/16`},
		{"host bits", "10.244.1.0/16", `"10.244.1.0/16" has host bits set: the range it names is 10.244.0.0/16`},
		{"dual-stack pair", "10.244.0.0/16,fd00::/56", `"10.244.0.0/16,fd00::/56": dual-stack ranges are not supported; give one CIDR`},
		{"IPv4-mapped", "::ffff:10.0.0.0/104", `"::ffff:10.0.0.0/104": write an IPv4 range as IPv4`},
		{"NUL", "10.244.0.0/16\x00", `"10.244.0.0/16\x00" is not a CIDR such as 10.244.0.0/16`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Prefix(tt.in); errText(err) != tt.err {
				t.Errorf("Prefix(%q) = %q, want %q", tt.in, errText(err), tt.err)
			}
		})
	}
}

func TestSubnets(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"service /12", ServiceSubnet(p("10.96.0.0/12")), ""},
		{"service /11", ServiceSubnet(p("10.96.0.0/11")), "10.96.0.0/11 is too large: kubeadm allows at most 20 host bits (a /12)"},
		{"service IPv6 /108", ServiceSubnet(p("fd00:96::/108")), ""},
		{"service IPv6 /64", ServiceSubnet(p("fd00:96::/64")), "fd00:96::/64 is too large: kubeadm allows at most 20 host bits (a /108)"},
		{"service /28", ServiceSubnet(p("10.96.0.0/28")), ""},
		{"service /29", ServiceSubnet(p("10.96.0.0/29")), "10.96.0.0/29 is too small: kubeadm needs at least 10 addresses (the DNS service takes the tenth)"},
		{"pod /16", PodSubnet(p("10.244.0.0/16"), DefaultNodeMask4), ""},
		{"pod /24", PodSubnet(p("10.244.0.0/24"), DefaultNodeMask4), ""},
		{"pod /25", PodSubnet(p("10.244.0.0/25"), DefaultNodeMask4), "10.244.0.0/25 is smaller than one node's pod range, a /24: use a /24 or larger"},
		{"pod /7", PodSubnet(p("10.0.0.0/7"), DefaultNodeMask4), "10.0.0.0/7 is too large for node ranges of /24: kubeadm allows at most 16 bits between them (a /8)"},
		{"pod IPv6 /56", PodSubnet(p("fd00:10:244::/56"), DefaultNodeMask6), ""},
		{"pod IPv6 /80", PodSubnet(p("fd00:10:244::/80"), DefaultNodeMask6), "fd00:10:244::/80 is smaller than one node's pod range, a /64: use a /64 or larger"},
		{"pod /29 with /30 nodes", PodSubnet(p("10.244.0.0/29"), 30), "10.244.0.0/29 is too small: kubeadm needs at least 14 addresses"},
		{"pod with a node mask past the family", PodSubnet(p("10.244.0.0/16"), 33), "a node mask of 33 is not a prefix length for 10.244.0.0/16"},
		{"disjoint", Disjoint(p("10.244.0.0/16"), p("10.96.0.0/12")), ""},
		{"overlapping", Disjoint(p("10.100.0.0/16"), p("10.96.0.0/12")), "the pod subnet 10.100.0.0/16 and the service subnet 10.96.0.0/12 overlap"},
		{"mixed families", Disjoint(p("10.244.0.0/16"), p("fd00:96::/108")), "the pod subnet 10.244.0.0/16 and the service subnet fd00:96::/108 are of different IP families: use one (dual-stack is not supported)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errText(tt.err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
