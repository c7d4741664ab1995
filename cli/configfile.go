package cli

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// configFlag names the flag (and, through its environment twin, SWARMGATE_CONFIG) that points at
// a config file.
const configFlag = "config"

// envName is a flag's environment twin: http-addr is SWARMGATE_HTTP_ADDR.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyConfigFile sets the flags of fs from the config file at path, except those for which skip
// says a higher source (the command line, the environment) already gave a value.
//
// The format is one "flag-name = value" per line, the names exactly the flags' names. Blank lines
// and lines starting with # are ignored, as is the rest of a line from a # that follows a space; a
// value in double quotes (Go syntax) keeps spaces and #. A boolean flag may stand alone ("no-dht"
// means "no-dht = true"). A repeatable flag takes one line per value; any other flag may be set
// once. Every mistake is reported with the file, the line and the setting.
func applyConfigFile(fs *flag.FlagSet, path string, skip func(name string) bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var errs []error
	seen := map[string]int{} // flag name → first line
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, args...)))
		}
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, hasValue := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !hasValue {
			key = stripComment(key)
		}
		f := fs.Lookup(key)
		switch {
		case key == "":
			bad("%q: want flag-name = value", line)
			continue
		case key == configFlag:
			bad("config: a config file cannot name another one")
			continue
		case f == nil && serveOnly[key] && fs.Name() == "seed":
			// One file may serve both commands; seed's gateway has no use for these.
			continue
		case f == nil:
			bad("unknown setting %q%s", key, suggest(fs, key))
			continue
		}
		if !hasValue {
			if !isBoolFlag(f) {
				bad("%s: want %s = value", key, key)
				continue
			}
			value = "true"
		} else if value, err = configValue(value); err != nil {
			bad("%s: %v", key, err)
			continue
		}
		if first, ok := seen[key]; ok && !isRepeatable(f) {
			bad("%s: set again (first on line %d); only repeatable settings may appear more than once", key, first)
			continue
		}
		if _, ok := seen[key]; !ok {
			seen[key] = n
		}
		if skip(key) {
			continue
		}
		if err := f.Value.Set(value); err != nil {
			bad("%s = %q: %s", key, value, explain(f, err))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("config file %s: %w", path, err))
	}
	return errors.Join(errs...)
}

// configValue unquotes a double-quoted value, or drops a trailing " # comment" from a bare one.
func configValue(v string) (string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) {
		end := closingQuote(v)
		if end < 0 {
			return "", fmt.Errorf("%s: unterminated quoted value", v)
		}
		s, err := strconv.Unquote(v[:end+1])
		if err != nil {
			return "", fmt.Errorf("%s: bad quoted value: %v", v, err)
		}
		if rest := strings.TrimSpace(v[end+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", fmt.Errorf("%s: text after the closing quote", v)
		}
		return s, nil
	}
	return stripComment(v), nil
}

// closingQuote is the index of the quote that ends the Go string literal opening s, or -1.
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// stripComment drops a comment that starts with # after white space.
func stripComment(s string) string {
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

// suggest names the flag an unknown key was probably meant to be (--bt-port, SWARMGATE_BT_PORT,
// bt_port).
func suggest(fs *flag.FlagSet, key string) string {
	k := strings.TrimLeft(strings.ToLower(strings.TrimPrefix(key, envPrefix)), "-")
	k = strings.ReplaceAll(k, "_", "-")
	if k != key && k != configFlag && fs.Lookup(k) != nil {
		return fmt.Sprintf(" (did you mean %s?)", k)
	}
	return fmt.Sprintf(" (see swarmgate %s --help for the settings)", fs.Name())
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func isRepeatable(f *flag.Flag) bool {
	_, ok := f.Value.(repeatable)
	return ok
}

// explain says why a value was refused. The flag package's own types only say "parse error";
// the others (ours) say what they want.
func explain(f *flag.Flag, err error) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err.Error()
	}
	var want string
	switch g.Get().(type) {
	case bool:
		want = "want true or false"
	case int, int64, uint, uint64:
		want = "want a whole number"
	case float64:
		want = "want a number"
	case time.Duration:
		want = "want a duration such as 30s or 5m"
	default:
		return err.Error()
	}
	if strings.Contains(err.Error(), "range") {
		want += " (out of range)"
	}
	return want
}
