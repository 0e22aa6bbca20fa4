-- FireTimers reads due timers in the order (fire_at, run_id, seq) and stops
-- at its batch size. An index in exactly that order lets it read the head
-- of the index and stop, whatever the planner believes about the table's
-- size; the index on fire_at alone left the tie-break to a sort of every
-- timer due, which the planner could choose to do over a full scan.
-- NextWakeup's min(fire_at) reads the same index.

-- +goose Up
CREATE INDEX keel_timers_due ON keel_timers (fire_at, run_id, seq);
DROP INDEX keel_timers_fire_at;

-- +goose Down
CREATE INDEX keel_timers_fire_at ON keel_timers (fire_at);
DROP INDEX keel_timers_due;
