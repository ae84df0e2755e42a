// Command crid-shim is crid's per-container shim as a binary of its own:
// the same code as `crid shim`, without the daemon's packages, so that the
// memory paid once per container stays small. crid uses it when it sits
// next to the crid binary.
package main

import (
	"os"

	"github.com/crid-dev/crid/pkg/shim"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "shim" {
		args = args[1:]
	}
	os.Exit(shim.Main(args))
}
