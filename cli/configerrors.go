package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"github.com/swarmgate/swarmgate/gateway"
)

// configFlags maps each gateway.Config field a flag of fs sets to that flag's name. It goes by
// address: every such flag's Value is a pointer to its field (the flag package's own values and
// ours, such as (*sizeFlag)(&c.CacheSize), alike), so a new flag needs no entry in a table.
func configFlags(fs *flag.FlagSet, cfg *gateway.Config) map[string]string {
	byAddr := map[uintptr]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if v := reflect.ValueOf(f.Value); v.Kind() == reflect.Pointer {
			byAddr[v.Pointer()] = f.Name
		}
	})
	fields := map[string]string{}
	cv := reflect.ValueOf(cfg).Elem()
	for i := range cv.NumField() {
		sf := cv.Type().Field(i)
		if !sf.IsExported() || sf.Type.Size() == 0 {
			continue
		}
		if name, ok := byAddr[cv.Field(i).Addr().Pointer()]; ok {
			fields[sf.Name] = name
		}
	}
	return fields
}

var (
	// fieldName matches a word that may be a Config field's name (HTTPAddr, BTPort's).
	fieldName = regexp.MustCompile(`\b[A-Z][A-Za-z]+\b`)
	// quoted matches a value as %q quotes it: what a user typed is never reworded.
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// rewordFields replaces the Config field names in msg, outside quoted values, with "--" and the
// flag that sets each.
func rewordFields(msg string, flags map[string]string) string {
	var b strings.Builder
	reword := func(s string) {
		b.WriteString(fieldName.ReplaceAllStringFunc(s, func(w string) string {
			if name, ok := flags[w]; ok {
				return "--" + name
			}
			return w
		}))
	}
	last := 0
	for _, q := range quoted.FindAllStringIndex(msg, -1) {
		reword(msg[last:q[0]])
		b.WriteString(msg[q[0]:q[1]])
		last = q[1]
	}
	reword(msg[last:])
	return b.String()
}

// inFlagWords rewords the gateway's config errors for the command line: the Config fields they
// name (a *gateway.FieldError's own and any its message mentions) become the flags that set them,
// one problem a line (errors.Join's). Fields no flag sets keep their names; the result still matches what err
// matched (errors.Is, errors.As).
func inFlagWords(err error, flags map[string]string) error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, inFlagWords(e, flags))
		}
		return errors.Join(out...)
	}
	msg := rewordFields(err.Error(), flags)
	if msg == err.Error() {
		return err
	}
	return &reworded{msg: msg, err: err}
}

// reworded is an error with a new message and the old one's identity.
type reworded struct {
	msg string
	err error
}

func (r *reworded) Error() string { return r.msg }
func (r *reworded) Unwrap() error { return r.err }

// printError writes err to w one line a problem, each after "swarmgate: ".
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, "swarmgate:", line)
	}
}
