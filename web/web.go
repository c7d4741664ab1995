// Package web holds the pages the gateway serves to browsers. It knows the gateway's HTTP API and
// nothing of its internals.
//
// static/ is served as is (static/vendor holds webtorrent's prebuilt browser files, copied from the
// pinned npm package by `make web`, and live.min.js, the live page's esbuild bundle of hls.js and
// p2p-media-loader); templates/ are the pages that name a torrent (watch, embed) or a live stream
// (live), rendered by the gateway so that link previews and oEmbed discovery work without JavaScript.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static templates
var files embed.FS

// Static is the tree of pages and assets, rooted at the static folder.
func Static() fs.FS { return sub("static") }

// Templates holds the html/template pages, rooted at the templates folder.
func Templates() fs.FS { return sub("templates") }

func sub(dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the folders are embedded at build time; their absence is a build bug
	}
	return s
}
