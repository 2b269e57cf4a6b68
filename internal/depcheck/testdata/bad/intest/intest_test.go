package intest

import _ "github.com/kiln-dev/kiln/internal/pipeline"
