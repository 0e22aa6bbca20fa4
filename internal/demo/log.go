package demo

import (
	"io"
	"log/slog"
)

// quiet is the demo's logger: the narration is the output; engine warnings
// would only clutter it.
func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
