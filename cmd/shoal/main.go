// Command shoal is the command-line client of shoald. It mirrors Docker's
// swarm-mode commands (swarm, node, service) and talks gRPC to the local
// daemon's unix control socket (-H or SHOAL_HOST for another).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/commands"
)

func main() {
	cli := command.NewCli()
	if fd := int(os.Stdout.Fd()); term.IsTerminal(fd) {
		cli.OutIsTerminal = true
		if w, _, err := term.GetSize(fd); err == nil {
			cli.TermWidth = w
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first Ctrl-C a second one kills the CLI at once.
		<-ctx.Done()
		stop()
	}()
	code := commands.Run(ctx, cli, os.Args[1:])
	stop()
	os.Exit(code)
}
