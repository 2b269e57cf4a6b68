package kubenode

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"text/template"

	"github.com/kiln-dev/kiln/internal/guestlink"
	"github.com/kiln-dev/kiln/internal/recipe"
)

// Every file in files/ is a text/template named by its base name. A line that holds only an
// action starts it with "{{-", so that the line vanishes from the output as if deleted; as that
// also trims the blank lines before it, a blank line that must stay goes after such a line.
//
//go:embed files
var filesFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").
	Funcs(template.FuncMap{"json": toJSON}).ParseFS(filesFS, "files/*"))

// templateData is what the templates read: the recipe's kubernetes section with its defaults
// filled, the static pod a kubeadm patch is for, and this package's paths and names.
type templateData struct {
	recipe.Kubernetes
	Component string

	KubeadmConfigPath, KubeadmJoinPath, FirstBootScript, FlannelManifest, EtcdUnit string
	PreloadDigestFile, PodResolvConf                                               string
	FlannelImage                                                                   string
	KubeVIPManifest, SuperAdminConf, JoinAfterPath                                 string
	KubeconfigPort, KubeconfigEnd                                                  string // guestlink's
}

// render executes the template name for k (its defaults filled) and component.
func render(name string, k recipe.Kubernetes, component string) ([]byte, error) {
	d := templateData{
		Kubernetes: k, Component: component,
		KubeadmConfigPath: KubeadmConfigPath, KubeadmJoinPath: KubeadmJoinPath, FirstBootScript: FirstBootScript,
		FlannelManifest: FlannelManifest, EtcdUnit: EtcdUnit,
		PreloadDigestFile: PreloadDigestFile, PodResolvConf: PodResolvConf,
		FlannelImage:    FlannelImage,
		KubeVIPManifest: KubeVIPManifest, SuperAdminConf: SuperAdminConf, JoinAfterPath: JoinAfterPath,
		KubeconfigPort: guestlink.KubeconfigPort, KubeconfigEnd: guestlink.KubeconfigEnd,
	}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, d); err != nil {
		return nil, fmt.Errorf("writing %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// toJSON writes v as JSON, for a value inside a JSON document of a template.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
