// Package web holds the pages the gateway serves to browsers. It knows the gateway's HTTP API and
// nothing of its internals.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static is the tree of pages and assets, rooted at the static folder.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the folder is embedded at build time; its absence is a build bug
	}
	return sub
}
