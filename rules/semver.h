// Semantic versions as the go command reads them (golang.org/x/mod/semver):
// a leading "v", MAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]], numbers without
// leading zeros. Used to tell immutable GOPROXY responses (a canonical
// version never changes content) from mutable ones (branch names, queries).
#pragma once

#include <string>
#include <string_view>

namespace switchyard::rules {

// True if `v` is a semantic version in the go command's dialect. The
// shorthands "v1" and "v1.2" are valid (they stand for v1.0.0 and v1.2.0) but
// may not carry a prerelease or build suffix.
bool semverIsValid(std::string_view v);

// The canonical spelling of `v`: missing .MINOR/.PATCH filled in with zeros
// and build metadata dropped ("v1.2+x" is invalid, "v1.2.3+x" -> "v1.2.3").
// Returns "" for an invalid version.
std::string semverCanonical(std::string_view v);

// True if `v` is valid and already canonical: "v1.2.3" and "v1.2.3-rc.1" are,
// "v1.2", "v1.2.3+meta" and "master" are not.
bool isCanonicalVersion(std::string_view v);

// True if `v` is a version the go command treats as canonical for a module
// (module.CanonicalVersion(v) == v): a canonical semantic version, optionally
// followed by the one build suffix Go keeps, "+incompatible"
// ("v2.0.0+incompatible" names a fixed commit just like "v2.0.0").
bool isCanonicalModuleVersion(std::string_view v);

}  // namespace switchyard::rules
