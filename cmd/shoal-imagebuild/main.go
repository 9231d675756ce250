// Command shoal-imagebuild builds shoal's small test images (busybox, whoami)
// without Docker and pushes them to a registry, for demos and lab runs where
// nothing can be pulled from the internet.
//
//	shoal-imagebuild --registry 127.0.0.1:5000 busybox whoami
//
// pushes 127.0.0.1:5000/shoal/busybox:latest and
// 127.0.0.1:5000/shoal/whoami:latest.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/test/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCommand().ExecuteContext(ctx); err != nil {
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var (
		registry string
		insecure bool
		repo     string
		tag      string
	)
	cmd := &cobra.Command{
		Use:   "shoal-imagebuild --registry HOST:PORT [--insecure] IMAGE...",
		Short: "Build shoal's test images and push them to a registry",
		Long: `Build shoal's small test images without Docker and push them to a registry.

Images:
  busybox  Debian's static busybox (/bin/busybox from busybox-static) with its
           applets linked, a minimal /etc, default command "sleep 3600".
  whoami   a static Go HTTP server on :80 (or $PORT): GET / answers its
           hostname, $TASK_NAME and a request counter; GET /health answers 200.
           Built with the local Go toolchain (CGO_ENABLED=0).

Each IMAGE is pushed as HOST:PORT/REPO/IMAGE:TAG (default REPO "shoal",
TAG "latest"). Registries on localhost, loopback or private addresses are
reached over plain HTTP; --insecure forces plain HTTP for any host.
With no IMAGE, all images are built.`,
		Example: "  shoal-imagebuild --registry 127.0.0.1:5000 busybox whoami",
		Args: func(_ *cobra.Command, args []string) error {
			for _, a := range args {
				if !isKnown(a) {
					return fmt.Errorf("unknown image %q (known: %s)", a, strings.Join(images.Names(), ", "))
				}
			}
			return nil
		},
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if registry == "" {
				return fmt.Errorf("--registry is required (e.g. --registry 127.0.0.1:5000)")
			}
			if len(args) == 0 {
				args = images.Names()
			}
			for _, n := range args {
				img, err := images.Build(cmd.Context(), n)
				if err != nil {
					return err
				}
				ref := fmt.Sprintf("%s/%s/%s:%s", registry, repo, n, tag)
				if err := images.Push(cmd.Context(), img, ref, insecure); err != nil {
					return err
				}
				d, _ := img.Digest()
				fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", ref, d)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&registry, "registry", "", "registry to push to, HOST:PORT")
	f.BoolVar(&insecure, "insecure", false, "push over plain HTTP whatever the host")
	f.StringVar(&repo, "repo", "shoal", "repository prefix")
	f.StringVar(&tag, "tag", "latest", "tag to push")
	return cmd
}

func isKnown(n string) bool {
	for _, k := range images.Names() {
		if k == n {
			return true
		}
	}
	return false
}
