// Command hello is built by TestBuild to check lab.Build.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("hello", len(os.Args)-1) }
