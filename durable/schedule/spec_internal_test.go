package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustCompile(t *testing.T, s Spec) *compiledSpec {
	t.Helper()
	c, err := compile("s", s.withDefaults())
	require.NoError(t, err)
	return c
}

func times(c *compiledSpec, after time.Time, n int) []time.Time {
	var out []time.Time
	for range n {
		after = c.next(after)
		if after.IsZero() {
			break
		}
		out = append(out, after)
	}
	return out
}

func at(h, m int) time.Time { return time.Date(2026, 1, 5, h, m, 0, 0, time.UTC) }

func TestNextCron(t *testing.T) {
	t.Parallel()
	c := mustCompile(t, Spec{Cron: []string{"*/15 * * * *"}})
	require.Equal(t, []time.Time{at(9, 15), at(9, 30), at(9, 45)}, times(c, at(9, 0), 3), "strictly after the given time")
	require.Equal(t, at(9, 15), c.next(at(9, 0).Add(time.Nanosecond)))

	hourly := mustCompile(t, Spec{Cron: []string{"@hourly"}})
	require.Equal(t, []time.Time{at(10, 0), at(11, 0)}, times(hourly, at(9, 30), 2))

	// Two expressions: the union of their fire times.
	both := mustCompile(t, Spec{Cron: []string{"0 * * * *", "30 9 * * *"}})
	require.Equal(t, []time.Time{at(9, 30), at(10, 0), at(11, 0)}, times(both, at(9, 10), 3))
}

func TestNextCronTimeZone(t *testing.T) {
	t.Parallel()
	// 09:00 in Paris is 08:00 UTC in January.
	c := mustCompile(t, Spec{Cron: []string{"0 9 * * *"}, TimeZone: "Europe/Paris"})
	require.Equal(t, at(8, 0), c.next(at(0, 0)))
	require.Equal(t, time.UTC, c.next(at(0, 0)).Location())
}

func TestNextInterval(t *testing.T) {
	t.Parallel()
	c := mustCompile(t, Spec{Intervals: []Interval{{Every: 10 * time.Minute, Offset: 2 * time.Minute}}})
	require.Equal(t, []time.Time{at(9, 2), at(9, 12), at(9, 22)}, times(c, at(9, 0), 3))
	require.Equal(t, at(9, 12), c.next(at(9, 2)), "strictly after a fire time")

	before := time.Date(1969, 12, 31, 23, 55, 0, 0, time.UTC)
	e := mustCompile(t, Spec{Intervals: []Interval{{Every: 10 * time.Minute}}})
	require.Equal(t, time.Unix(0, 0).UTC(), e.next(before), "floor division before the epoch")
}

func TestNextBounds(t *testing.T) {
	t.Parallel()
	c := mustCompile(t, Spec{Cron: []string{"0 * * * *"}, StartAt: at(12, 0), EndAt: at(14, 0)})
	require.Equal(t, []time.Time{at(12, 0), at(13, 0), at(14, 0)}, times(c, at(9, 0), 10), "StartAt and EndAt are inclusive")
}

func TestJitterIsDeterministicAndBounded(t *testing.T) {
	t.Parallel()
	c := mustCompile(t, Spec{Cron: []string{"* * * * *"}, Jitter: 30 * time.Second})
	seen := map[time.Duration]bool{}
	for i := range 50 {
		j := c.jitter(at(9, i))
		require.GreaterOrEqual(t, j, time.Duration(0))
		require.Less(t, j, 30*time.Second)
		require.Equal(t, j, c.jitter(at(9, i)), "the same fire time always gets the same jitter")
		seen[j] = true
	}
	require.Greater(t, len(seen), 10, "jitter spreads the starts")
	require.Zero(t, mustCompile(t, Spec{Cron: []string{"* * * * *"}}).jitter(at(9, 1)))
}

func TestCompileRejects(t *testing.T) {
	t.Parallel()
	bad := []Spec{
		{},
		{Cron: []string{"not a cron"}},
		{Cron: []string{"* * * * * *"}}, // six fields: seconds are not standard
		{Cron: []string{"* * * * *"}, TimeZone: "Mars/Olympus"},
		{Intervals: []Interval{{Every: time.Millisecond}}},
		{Intervals: []Interval{{Every: time.Minute, Offset: time.Minute}}},
		{Intervals: []Interval{{Every: time.Minute, Offset: -time.Second}}},
		{Cron: []string{"* * * * *"}, StartAt: at(10, 0), EndAt: at(9, 0)},
		{Cron: []string{"* * * * *"}, Jitter: -time.Second},
		{Cron: []string{"* * * * *"}, CatchupWindow: -time.Second},
		{Cron: []string{"* * * * *"}, Overlap: "sometimes"},
	}
	for _, s := range bad {
		_, err := compile("s", s)
		require.ErrorIs(t, err, ErrInvalidSpec, "%+v", s)
	}
}
