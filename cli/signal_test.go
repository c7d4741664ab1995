package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childArgsEnv carries the arguments of a serve the test binary runs as a child process.
const childArgsEnv = "CLI_TEST_CHILD_ARGS"

// TestServeChild is not a test: it is the child process of TestServeSignals, which runs the test
// binary again with childArgsEnv set.
func TestServeChild(t *testing.T) {
	raw := os.Getenv(childArgsEnv)
	if raw == "" {
		t.Skip("only run as TestServeSignals' child")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(Run(args, os.Stdout, os.Stderr))
}

// child is a swarmgate serve in its own process, its stderr read line by line.
type child struct {
	cmd   *exec.Cmd
	lines chan string
	log   strings.Builder // every line read, for failure messages
	exit  chan error
}

func startChild(t *testing.T, extra ...string) *child {
	t.Helper()
	clearEnv(t)
	args, _ := json.Marshal(safeArgs(t, "serve", extra...))
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(args))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 100), exit: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-c.exit
		}
	})
	return c
}

// waitLine returns the first line (from now on) that contains s.
func (c *child) waitLine(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before writing %q:\n%s", s, c.log.String())
			}
			c.log.WriteString(l + "\n")
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("child did not write %q:\n%s", s, c.log.String())
		}
	}
}

// wait returns the child's exit code once it exited, and the rest of its stderr.
func (c *child) wait(t *testing.T) (int, string) {
	t.Helper()
	for l := range c.lines {
		c.log.WriteString(l + "\n")
	}
	select {
	case err := <-c.exit:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if ee != nil && !ee.Exited() {
			t.Fatalf("child did not exit but died: %v\n%s", err, c.log.String())
		}
		return c.cmd.ProcessState.ExitCode(), c.log.String()
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not exit:\n%s", c.log.String())
		return 0, ""
	}
}

func (c *child) signal(t *testing.T, s os.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

var listeningURL = regexp.MustCompile(`url=(http://\S+)`)

// TestServeSignals: the first SIGTERM or SIGINT drains and exits 0; a second one during a drain
// that an open request holds up exits at once with code 1.
func TestServeSignals(t *testing.T) {
	if os.Getenv(childArgsEnv) != "" {
		t.Skip("in the child")
	}
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run("drain on "+sig.String(), func(t *testing.T) {
			c := startChild(t)
			c.waitLine(t, "swarmgate listening")
			c.signal(t, sig)
			code, log := c.wait(t)
			if code != exitOK || !strings.Contains(log, "draining") || !strings.Contains(log, "swarmgate stopped") {
				t.Errorf("after one %v: exit %d, want %d after draining and stopping:\n%s", sig, code, exitOK, log)
			}
		})
	}
	t.Run("second signal forces", func(t *testing.T) {
		// The demo video at 1 KiB/s: a stream of it takes far longer than the drain's 10 s, so
		// the drain is still on when the second signal comes.
		c := startChild(t, "--demo", "--upload-rate", "1k")
		m := listeningURL.FindStringSubmatch(c.waitLine(t, "swarmgate listening"))
		if m == nil {
			t.Fatalf("no url in the listening line:\n%s", c.log.String())
		}
		base := m[1]
		res, err := http.Get(base + "/api/torrents")
		if err != nil {
			t.Fatal(err)
		}
		var list []struct{ InfoHash string }
		err = json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		if err != nil || len(list) != 1 {
			t.Fatalf("torrents: %v, %+v", err, list)
		}
		// Once its headers are here the request is in its handler: Shutdown waits for it.
		stream, err := http.Get(base + "/stream/" + list[0].InfoHash + "/0")
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Body.Close()
		if stream.StatusCode != http.StatusOK {
			t.Fatalf("stream: %s", stream.Status)
		}
		c.signal(t, syscall.SIGTERM)
		c.waitLine(t, "draining")
		c.signal(t, syscall.SIGTERM)
		code, log := c.wait(t)
		if code != exitFailure || !strings.Contains(log, "forced exit") {
			t.Errorf("after a second SIGTERM: exit %d, want %d with \"forced exit\":\n%s", code, exitFailure, log)
		}
		if strings.Contains(log, "swarmgate stopped") {
			t.Errorf("the drain finished before the second signal; the test proved nothing:\n%s", log)
		}
	})
}
