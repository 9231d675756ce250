// Command shoal-logdriver is the log driver of shoal's containers: the
// containerd shim starts one beside each task (cio.BinaryIO) and it writes
// the task's stdout and stderr as records with per-line times to the
// task's log file, rotating it (see package logdriver). shoald finds it
// next to its own executable.
//
// It is a binary of its own, and not a mode of shoald, for its memory: it
// imports the standard library and package logdriver only (a test checks
// it), so each copy costs a few hundred KiB instead of shoald's megabytes.
package main

import (
	"os"

	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

func main() { logdriver.Main(os.Args[1:]) }
