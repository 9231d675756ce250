// Command logdriver is the log driver the executor's tests give the shim:
// shoald's driver mode (`shoald log-driver PATH`) alone, so the tests need
// not build the daemon. TestMain builds it once per run, without the race
// detector, whose exit delay would hold up every task's deletion.
package main

import (
	"fmt"
	"os"

	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == logdriver.Command {
		logdriver.Main(os.Args[2:])
	}
	fmt.Fprintf(os.Stderr, "usage: %s %s PATH\n", os.Args[0], logdriver.Command)
	os.Exit(2)
}
