package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/swarmgate/swarmgate/live"
)

const liveUsage = `Usage:
  swarmgate live keygen --out FILE   make a broadcaster key (mode 0600, never overwritten) and
                                     print its stream id
  swarmgate live id --key FILE       print the stream id of a key

The stream id is the key's public half: gateways, relays and browsers check the stream's
signatures with it and never need the key file. Keep the file secret and backed up: whoever
holds it can broadcast as the stream, and a lost key is a lost stream id.
"swarmgate live keygen --help" and "swarmgate live id --help" say more.
`

const keygenAbout = `Makes a new live stream: writes its broadcaster key (an Ed25519 private key) to FILE, which must
not exist, and prints the stream id, the key's public half that names the stream in its URLs.
Keep the file secret and backed up: whoever holds it can broadcast as the stream, and a lost key
is a lost stream id. swarmgate broadcast --key FILE sends video as the stream.
`

const idAbout = `Prints the stream id of the broadcaster key in FILE (made by swarmgate live keygen): the id its
stream is watched at, /live/<stream id>, and that relays follow.
`

// liveCmd runs "swarmgate live ...": the live streams' keys for now.
func liveCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "swarmgate: live needs a subcommand\n\n", liveUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "keygen":
		return liveKeygen(args, stdout, stderr)
	case "id":
		return liveID(args, stdout, stderr)
	}
	if asksHelp(sub) {
		fmt.Fprint(stdout, liveUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "swarmgate: unknown live subcommand %q\nRun \"swarmgate live help\" for its subcommands.\n", sub)
	return exitUsage
}

// liveFlags parses one path flag and no arguments; code is < 0 when the command should go on.
// about says what the command does, for its help.
func liveFlags(cmd, about, name, usage string, args []string, stdout, stderr io.Writer) (path string, code int) {
	fs := flag.NewFlagSet("live "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p := fs.String(name, "", usage)
	seeHelp := fmt.Sprintf("Run \"swarmgate live %s --help\" for the flags.\n", cmd)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: swarmgate live %s --%s FILE\n\n%s\nFlags:\n", cmd, name, about)
			printFlags(stdout, fs, false)
			return "", exitOK
		}
		fmt.Fprintf(stderr, "swarmgate: live %s: %v\n%s", cmd, explainParseError(fs, err), seeHelp)
		return "", exitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "swarmgate: live %s takes no arguments, got %q\n%s", cmd, fs.Args(), seeHelp)
		return "", exitUsage
	case *p == "":
		fmt.Fprintf(stderr, "swarmgate: live %s needs --%s FILE\n%s", cmd, name, seeHelp)
		return "", exitUsage
	}
	return *p, -1
}

func liveKeygen(args []string, stdout, stderr io.Writer) int {
	path, code := liveFlags("keygen", keygenAbout, "out", "write the new private key to `FILE` (PKCS#8 PEM, mode 0600); it must not exist", args, stdout, stderr)
	if code >= 0 {
		return code
	}
	priv, err := live.GenerateKey()
	if err == nil {
		err = live.WriteKeyFile(path, priv)
	}
	if err != nil {
		fmt.Fprintln(stderr, "swarmgate:", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "swarmgate: wrote the broadcaster key to %s: keep it secret and backed up\n", path)
	fmt.Fprintln(stdout, live.StreamIDOfKey(priv))
	return exitOK
}

func liveID(args []string, stdout, stderr io.Writer) int {
	path, code := liveFlags("id", idAbout, "key", "the broadcaster's private key `FILE`", args, stdout, stderr)
	if code >= 0 {
		return code
	}
	priv, err := live.ReadKeyFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "swarmgate:", keyFileError(path, err))
		return exitFailure
	}
	fmt.Fprintln(stdout, live.StreamIDOfKey(priv))
	return exitOK
}

// keyFileError words ReadKeyFile's error for the command line: a missing key file says how to
// make one.
func keyFileError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (make one with `swarmgate live keygen --out %s`)", err, path)
	}
	return err
}

// liveFlagNames names the command-line flag behind a live error that stems from a setting:
// package live words its errors in config fields, which users do not see.
func liveFlagNames(err error) error {
	if errors.Is(err, live.ErrStreamLimit) {
		return fmt.Errorf("%w; raise --max-live-streams", err)
	}
	return err
}
