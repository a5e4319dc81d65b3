#include "rules/semver.h"

#include <gtest/gtest.h>

#include <string>

namespace switchyard::rules {
namespace {

struct SemverCase {
  const char* input;
  const char* canonical;  // "" = invalid
  bool is_canonical;      // isCanonicalVersion
  bool is_module_canonical;
};

// Cases follow golang.org/x/mod/semver's documented grammar.
const SemverCase kSemverCases[] = {
    {"v1.2.3", "v1.2.3", true, true},
    {"v0.0.0", "v0.0.0", true, true},
    {"v1", "v1.0.0", false, false},
    {"v1.2", "v1.2.0", false, false},
    {"v1.2.3-pre", "v1.2.3-pre", true, true},
    {"v1.2.3-pre.1.alpha-x", "v1.2.3-pre.1.alpha-x", true, true},
    {"v1.2.3-0", "v1.2.3-0", true, true},
    {"v1.2.3-0a", "v1.2.3-0a", true, true},  // alphanumeric: leading 0 fine
    {"v1.2.3-01", "", false, false},         // numeric with leading zero
    {"v1.2.3-pre.01", "", false, false},
    {"v1.2.3-", "", false, false},
    {"v1.2.3-a..b", "", false, false},
    {"v1.2.3-a.", "", false, false},
    {"v1.2.3+meta", "v1.2.3", false, false},
    {"v1.2.3+meta.01", "v1.2.3", false, false},  // build may have leading zeros
    {"v1.2.3-rc.1+build.5", "v1.2.3-rc.1", false, false},
    {"v1.2.3+", "", false, false},
    {"v1.2.3+a..b", "", false, false},
    {"v1.2.3+a_b", "", false, false},
    {"v2.0.0+incompatible", "v2.0.0", false, true},
    {"v2.0.0-rc.1+incompatible", "v2.0.0-rc.1", false, true},
    {"v2.0+incompatible", "", false, false},
    {"v2.0.0+incompatible.x", "v2.0.0", false, false},
    {"v1.2-pre", "", false, false},  // shorthand takes no suffix
    {"v1+meta", "", false, false},
    {"1.2.3", "", false, false},
    {"V1.2.3", "", false, false},
    {"v", "", false, false},
    {"", "", false, false},
    {"v01.2.3", "", false, false},
    {"v1.02.3", "", false, false},
    {"v1.2.03", "", false, false},
    {"v1.2.3.4", "", false, false},
    {"v1..3", "", false, false},
    {"v1.2.", "", false, false},
    {"v-1.2.3", "", false, false},
    {"v1.2.3 ", "", false, false},
    {"v1.2.3-é", "", false, false},
    {"v10.200.3000", "v10.200.3000", true, true},
    {"v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20191109021931-daa7c04131f5", true, true},
    {"master", "", false, false},
    {"+incompatible", "", false, false},
};

TEST(Semver, Table) {
  for (const SemverCase& c : kSemverCases) {
    SCOPED_TRACE(std::string("version ") + c.input);
    const bool valid = c.canonical[0] != '\0';
    EXPECT_EQ(semverIsValid(c.input), valid);
    EXPECT_EQ(semverCanonical(c.input), c.canonical);
    EXPECT_EQ(isCanonicalVersion(c.input), c.is_canonical);
    EXPECT_EQ(isCanonicalModuleVersion(c.input), c.is_module_canonical);
    if (valid) {
      // Canonical is idempotent and always canonical itself.
      EXPECT_EQ(semverCanonical(semverCanonical(c.input)), c.canonical);
      EXPECT_TRUE(isCanonicalVersion(c.canonical));
    }
  }
}

TEST(Semver, EmbeddedNulIsInvalid) {
  EXPECT_FALSE(semverIsValid(std::string("v1.2.3\0", 7)));
  EXPECT_FALSE(semverIsValid(std::string("v1.2.3+a\0", 9)));
}

}  // namespace
}  // namespace switchyard::rules
