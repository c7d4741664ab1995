package live

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: live owns goroutines (a
// relay's pollers and fetches, a broadcast's ffmpeg and uploads).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
