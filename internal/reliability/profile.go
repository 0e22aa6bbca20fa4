package reliability

import "os"

// ProfileEnv is the environment variable that selects the profile: "full"
// for the full counts, anything else (or unset) for the CI profile.
const ProfileEnv = "KEEL_RELIABILITY"

// Full reports whether the full profile is selected.
func Full() bool { return os.Getenv(ProfileEnv) == "full" }

// Pick returns ci under the CI profile and full under the full profile.
func Pick[T any](ci, full T) T {
	if Full() {
		return full
	}
	return ci
}
