// Package stage breaks its rule through another package: it imports the pin stage, which is
// allowed, and so reaches the OCI library, which is not.
package stage

import _ "github.com/kiln-dev/kiln/internal/pin"
