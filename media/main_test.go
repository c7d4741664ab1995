package media

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives its tests (exec's copiers among them).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
