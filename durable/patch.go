package durable

// Patch marks a change to workflow code so that runs already past this point
// keep their recorded behaviour while new runs take the new path:
//
//	if durable.Patch(ctx, "use-search-v2") {
//		hits, err = searchV2.Run(ctx, q) // new code
//	} else {
//		hits, err = search.Run(ctx, q) // what older runs did here
//	}
//
// A run executing this point for the first time records a marker and gets
// true. A run replaying history gets true only if its history holds the
// marker here, that is, if it first executed this point with the patched
// code; a run that executed it before the patch was deployed gets false and
// replays the old branch. Within a run the answer for a change ID never
// changes.
//
// The lifecycle of a change:
//  1. Deploy the code with Patch and both branches.
//  2. Once no run that started before step 1 is still open (ListRuns,
//     Describe), replace Patch with DeprecatePatch and delete the old
//     branch. Runs started after step 1 still replay, because
//     DeprecatePatch accepts the marker they recorded.
//  3. Once no run that recorded the marker is open, delete DeprecatePatch.
func Patch(ctx Context, changeID string) bool {
	rs := stateOf(ctx)
	if v, ok := rs.patches[changeID]; ok {
		return v
	}
	name := patchMarker(changeID)
	if rs.replaying {
		rec, ok := rs.recorded[rs.seq+1]
		if !ok || rec.typ != EventMarkerRecorded || rec.data.Name != name {
			// This point was first executed before the patch.
			rs.patches[changeID] = false
			return false
		}
	}
	rs.mustCommand(EventMarkerRecorded, &eventData{Name: name})
	rs.patches[changeID] = true
	return true
}

// DeprecatePatch replaces Patch once the old branch is gone (step 2 of
// Patch's lifecycle): it records nothing, and a replay whose history holds
// the change's marker at this point accepts it.
func DeprecatePatch(ctx Context, changeID string) {
	rs := stateOf(ctx)
	if _, ok := rs.patches[changeID]; ok {
		return
	}
	rs.patches[changeID] = true
	if !rs.replaying {
		return
	}
	if rec, ok := rs.recorded[rs.seq+1]; ok && rec.typ == EventMarkerRecorded && rec.data.Name == patchMarker(changeID) {
		rs.mustCommand(EventMarkerRecorded, &eventData{Name: patchMarker(changeID)})
	}
}

func patchMarker(changeID string) string { return "Patch:" + changeID }
