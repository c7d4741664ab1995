// Command swarmgate bridges BitTorrent swarms to browsers over WebRTC. See README.md.
package main

import (
	"os"

	"github.com/swarmgate/swarmgate/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
