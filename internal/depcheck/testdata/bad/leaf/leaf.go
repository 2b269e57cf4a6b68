// Package leaf is meant to import nothing of kiln's.
package leaf

import _ "github.com/kiln-dev/kiln/internal/imageref"
