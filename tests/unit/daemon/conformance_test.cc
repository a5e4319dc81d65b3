// Parser conformance: every request of conformance_cases.inc, fed to a real
// Connection whole, split in two at every byte boundary, and one byte at a
// time, must give the outcome the table gives (RFC 9110 / RFC 9112), or for
// a known deviation (conformance_deviations.inc) its recorded current one.
//
// SY_CONFORMANCE_PRINT=1 in the environment prints each case's observed
// outcome (whole request only) instead of checking the splits, for writing
// new rows.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "conformance_fixture.h"

namespace switchyard::conformance {
namespace {

enum class CaseClass {
  kRequestLine,
  kMethod,
  kVersion,
  kAbsoluteForm,
  kAuthorityForm,
  kOtherForms,
  kHost,
  kFieldSyntax,
  kObsFold,
  kLineEndings,
  kControlChars,
  kContentLength,
  kChunked,
  kTransferEncoding,
  kPersistence,
  kLimits,
};

const char* className(CaseClass c) {
  switch (c) {
    case CaseClass::kRequestLine:
      return "request line";
    case CaseClass::kMethod:
      return "method";
    case CaseClass::kVersion:
      return "version";
    case CaseClass::kAbsoluteForm:
      return "absolute-form";
    case CaseClass::kAuthorityForm:
      return "authority-form (CONNECT)";
    case CaseClass::kOtherForms:
      return "origin-form / asterisk-form";
    case CaseClass::kHost:
      return "Host";
    case CaseClass::kFieldSyntax:
      return "field syntax";
    case CaseClass::kObsFold:
      return "obs-fold";
    case CaseClass::kLineEndings:
      return "bare CR / LF";
    case CaseClass::kControlChars:
      return "NUL and controls";
    case CaseClass::kContentLength:
      return "Content-Length";
    case CaseClass::kChunked:
      return "chunked";
    case CaseClass::kTransferEncoding:
      return "Transfer-Encoding";
    case CaseClass::kPersistence:
      return "persistence / pipelining";
    case CaseClass::kLimits:
      return "limits";
  }
  return "?";
}

// Gives test failures a readable parameter instead of a raw enum value.
void PrintTo(CaseClass c, std::ostream* os) {
  *os << className(c);
}

struct Case {
  const char* name;
  CaseClass klass;
  const char* clause;    // the RFC section that decides it
  const char* expected;  // Outcome::str() of what the RFC calls for
  std::string_view raw;  // with {origin}, {pad:N}, {fields:N} placeholders
};

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
#define CASE(name, klass, clause, expected, raw) \
  {name, CaseClass::klass, clause, expected, std::string_view(raw, sizeof(raw) - 1)},
#include "conformance_cases.inc"
#undef CASE
  };
  return table;
}

struct Deviation {
  const char* name;
  // Outcome::str() of what Switchyard does today to the whole request, or
  // nullptr for a split deviation: the whole request is answered as the RFC
  // says, but some split of it is not.
  const char* current;
  const char* why;
};

const std::vector<Deviation>& deviations() {
  static const std::vector<Deviation> list = {
#define DEVIATION(name, current, why) {name, current, why},
#define SPLIT_DEVIATION(name, why) {name, nullptr, why},
#include "conformance_deviations.inc"
#undef SPLIT_DEVIATION
#undef DEVIATION
  };
  return list;
}

const Deviation* deviationOf(std::string_view name) {
  for (const Deviation& d : deviations()) {
    if (name == d.name) {
      return &d;
    }
  }
  return nullptr;
}

// Checks one case against its expected outcome: whole, split in two at
// every byte boundary, and one byte at a time.
void checkCase(ProxyHarness& harness, const Case& c) {
  const std::string request = harness.expand(c.raw);
  const Deviation* deviation = deviationOf(c.name);
  const bool split_deviation = deviation != nullptr && deviation->current == nullptr;
  const std::string expected =
      deviation != nullptr && !split_deviation ? deviation->current : c.expected;
  SCOPED_TRACE(std::string(c.name) + " (" + c.clause + ")");

  Outcome whole = harness.run(request, {});
  if (std::getenv("SY_CONFORMANCE_PRINT") != nullptr) {
    std::cout << "OUTCOME " << c.name << " | " << whole.str() << " | expected " << c.expected
              << "\n";
    return;
  }
  if (deviation != nullptr && !split_deviation) {
    EXPECT_NE(whole.str(), c.expected)
        << c.name << " now conforms: remove it from conformance_deviations.inc";
  }
  if (whole.str() != expected) {
    ADD_FAILURE() << c.name << ": expected " << expected << ", got " << whole.str();
    return;
  }

  // Split in two at every byte boundary; report the first few differences.
  std::vector<std::string> differences;
  for (size_t k = 1; k < request.size(); ++k) {
    Outcome split = harness.run(request, {k});
    if (split.str() != expected && differences.size() < 5) {
      differences.push_back("split at " + std::to_string(k) + ": " + split.str());
    }
  }
  std::vector<size_t> every_byte;
  for (size_t k = 1; k < request.size(); ++k) {
    every_byte.push_back(k);
  }
  Outcome bytewise = harness.run(request, every_byte);
  if (bytewise.str() != expected) {
    differences.push_back("one byte at a time: " + bytewise.str());
  }
  if (split_deviation) {
    EXPECT_FALSE(differences.empty())
        << c.name << " now gives one outcome at every split: remove it from "
        << "conformance_deviations.inc";
    return;
  }
  EXPECT_TRUE(differences.empty())
      << c.name << ": expected " << expected << " but\n  " << ::testing::PrintToString(differences);
}

// One test per class of the table (one process each under ctest, instead of
// one per row: a sanitizer build pays its start-up per process).
class Conformance : public ::testing::TestWithParam<CaseClass> {};

TEST_P(Conformance, SameOutcomeAtEveryByteBoundary) {
  ProxyHarness harness;
  int checked = 0;
  for (const Case& c : cases()) {
    if (c.klass == GetParam()) {
      checkCase(harness, c);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

std::string testName(const ::testing::TestParamInfo<CaseClass>& info) {
  std::string out;
  for (char c : std::string_view(className(info.param))) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '_') {
      out.push_back('_');
    }
  }
  while (!out.empty() && out.back() == '_') {
    out.pop_back();
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Table, Conformance,
                         ::testing::Values(CaseClass::kRequestLine, CaseClass::kMethod,
                                           CaseClass::kVersion, CaseClass::kAbsoluteForm,
                                           CaseClass::kAuthorityForm, CaseClass::kOtherForms,
                                           CaseClass::kHost, CaseClass::kFieldSyntax,
                                           CaseClass::kObsFold, CaseClass::kLineEndings,
                                           CaseClass::kControlChars, CaseClass::kContentLength,
                                           CaseClass::kChunked, CaseClass::kTransferEncoding,
                                           CaseClass::kPersistence, CaseClass::kLimits),
                         testName);

// The table itself: big enough, every row citing its clause, names unique,
// outcomes well-formed, and every deviation pointing at a row.
TEST(ConformanceTable, Shape) {
  const std::regex outcome(R"(^(-|\d{3}(,\d{3})*) (open|close) origin=\d+$)");
  std::set<std::string> names;
  std::map<CaseClass, int> per_class;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate name";
    EXPECT_TRUE(std::string_view(c.clause).starts_with("RFC ")) << c.clause;
    EXPECT_TRUE(std::regex_match(c.expected, outcome)) << c.expected;
    EXPECT_FALSE(c.raw.empty());
    ++per_class[c.klass];
  }
  EXPECT_GE(cases().size(), 150u);
  for (const auto& [klass, count] : per_class) {
    EXPECT_GE(count, 3) << className(klass);
  }
  std::set<std::string> deviated;
  for (const Deviation& d : deviations()) {
    SCOPED_TRACE(d.name);
    EXPECT_TRUE(names.count(d.name) == 1) << "no such case";
    EXPECT_TRUE(deviated.insert(d.name).second) << "listed twice";
    if (d.current != nullptr) {
      std::string current = d.current;
      EXPECT_TRUE(std::regex_match(current.substr(0, current.find(" problem=")), outcome))
          << current;
    }
    EXPECT_FALSE(std::string_view(d.why).empty());
  }
  std::cout << cases().size() << " cases, " << deviations().size() << " known deviations\n";
  for (const auto& [klass, count] : per_class) {
    std::cout << "  " << className(klass) << ": " << count << "\n";
  }
}

}  // namespace
}  // namespace switchyard::conformance
