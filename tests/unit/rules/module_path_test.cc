#include "rules/module_path.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace switchyard::rules {
namespace {

struct PathCase {
  const char* path;
  const char* error;  // nullptr = valid; otherwise a substring of the error
};

// Module path validity, after golang.org/x/mod/module CheckPath (master).
const PathCase kPathCases[] = {
    {"x.y/z", nullptr},
    {"x.y", nullptr},
    {"github.com/Azure/azure-sdk-for-go", nullptr},
    {"rsc.io/quote/v2", nullptr},
    {"example.com/m/v10", nullptr},
    {"example.com/a_b~c/d-e.f", nullptr},
    {"127.0.0.1/x", nullptr},
    {"x..y/z", nullptr},  // per element, "x..y" is fine (master dropped the double-dot rule)
    {"", "empty string"},
    {"x.y/\xffz", "invalid UTF-8"},
    {"x.y/\xc0\xafz", "invalid UTF-8"},  // overlong '/'
    {"/x.y/z", "empty path element"},
    {"-x.y/z", "leading dash"},
    {"x.y//z", "double slash"},
    {"x.y/z/", "trailing slash"},
    {"x.y/z/../w", "invalid path element \"..\""},
    {"x.y/./w", "invalid path element \".\""},
    {"x.y/.../w", "invalid path element \"...\""},
    {"x./z", "trailing dot in path element"},
    {"x.y/z.", "trailing dot in path element"},
    {".x.y/z", "leading dot in path element"},
    {"x.y/.z", "leading dot in path element"},
    {"x.y/z!", "invalid char '!'"},
    {"x.y/z+", "invalid char '+'"},  // '+' is import-path only
    {"x.y/z@v1", "invalid char '@'"},
    {"x.y/z:w", "invalid char ':'"},
    {"x.y/z w", "invalid char ' '"},
    {"x.y/z\\w", "invalid char '\\\\'"},
    {"x.y/испытание", "invalid char"},
    {"x.y/con", "\"con\" disallowed as path element component on Windows"},
    {"x.y/CON", "\"CON\" disallowed"},
    {"x.y/aux.foo", "\"aux\" disallowed"},
    {"x.y/com1.txt", "\"com1\" disallowed"},
    {"x.y/lpt9", "\"lpt9\" disallowed"},
    {"x.y/com", nullptr},
    {"x.y/com10", nullptr},
    {"x.y/prn2", nullptr},
    {"x.y/console", nullptr},
    {"x.y/z~", nullptr},
    {"x.y/z~0", "trailing tilde and digits in path element"},
    {"x.y/progra~1", "trailing tilde and digits"},
    {"x.y/z~1.txt", "trailing tilde and digits"},  // stem is "z~1"
    {"x.y/z09~09z", nullptr},
    {"x.y/z09~09z~09", "trailing tilde and digits"},
    {"x.y/z~1a", nullptr},
    {"xy/z", "missing dot in first path element"},
    {"localhost/z", "missing dot in first path element"},
    {"X.y/z", "invalid char 'X' in first path element"},
    {"github.Com/z", "invalid char 'C' in first path element"},
    {"x_y.com/z", "invalid char '_' in first path element"},
    {"x~y.com/z", "invalid char '~' in first path element"},
    {"x.y/z/v0", "invalid version"},
    {"x.y/z/v1", "invalid version"},
    {"x.y/z/v01", "invalid version"},
    {"x.y/z/v2.0", "invalid version"},
    {"x.y/z/v2", nullptr},
    {"x.y/v2", nullptr},
    {"x.y/z/v", nullptr},  // no digits: not a major suffix
    {"x.y/z/v1x", nullptr},
    {"x.y/z/xv1", nullptr},
    {"gopkg.in/yaml.v2", nullptr},
    {"gopkg.in/yaml.v0", nullptr},
    {"gopkg.in/yaml.v1", nullptr},
    {"gopkg.in/check.v1-unstable", nullptr},
    {"gopkg.in/user/repo.v3", nullptr},
    {"gopkg.in/yaml", "invalid version"},
    {"gopkg.in/yaml.v01", "invalid version"},
    {"gopkg.in/yaml/v2", "invalid version"},
    {"gopkg.in/yaml.v0-unstable", "invalid version"},
};

TEST(ModulePath, CheckTable) {
  for (const PathCase& c : kPathCases) {
    SCOPED_TRACE(std::string("path ") + c.path);
    std::string error;
    const bool ok = checkModulePath(c.path, &error);
    if (c.error == nullptr) {
      EXPECT_TRUE(ok) << error;
      EXPECT_EQ(escapePath(c.path).has_value(), true);
    } else {
      EXPECT_FALSE(ok);
      EXPECT_NE(error.find(c.error), std::string::npos) << "error was: " << error;
      EXPECT_NE(error.find("malformed module path"), std::string::npos) << error;
      EXPECT_FALSE(escapePath(c.path).has_value());
    }
  }
}

TEST(ModulePath, NullErrorPointerIsAllowed) {
  EXPECT_TRUE(checkModulePath("x.y/z"));
  EXPECT_FALSE(checkModulePath("x.y//z"));
  EXPECT_TRUE(checkFileElement("v1.0.0"));
  EXPECT_FALSE(checkFileElement("v1/0"));
}

TEST(ModulePath, EmbeddedNulIsRejected) {
  EXPECT_FALSE(checkModulePath(std::string("x.y/z\0", 6)));
  EXPECT_FALSE(checkFileElement(std::string("v1\0", 3)));
}

struct ElemCase {
  const char* elem;
  const char* error;  // nullptr = valid
};

const ElemCase kElemCases[] = {
    {"v1.0.0", nullptr},
    {"v1.0.0-rc.1+incompatible", nullptr},
    {"master", nullptr},
    {"Feature_X", nullptr},
    {".hidden", nullptr},  // leading dot is fine in file names
    {"-dash", nullptr},    // leading dash only matters for whole paths
    {"a b", nullptr},
    {"!#$%&()+,-.=@[]^_{}~ x", nullptr},
    {"z~1", nullptr},  // no short-name check for file names
    {"", "empty path element"},
    {".", "invalid path element"},
    {"..", "invalid path element"},
    {"v1.", "trailing dot"},
    {"v1/0", "invalid char '/'"},
    {"v1\\0", "invalid char"},
    {"v1:0", "invalid char ':'"},
    {"v1*", "invalid char '*'"},
    {"v1?", "invalid char '?'"},
    {"v1\"", "invalid char"},
    {"v1'", "invalid char"},
    {"v1<", "invalid char '<'"},
    {"v1|", "invalid char '|'"},
    {"v1`", "invalid char '`'"},
    {"v1\t", "invalid char"},
    {"vé", "invalid char"},  // Go would admit letters; we refuse non-ASCII
    {"nul", "disallowed"},
    {"NuL.txt", "disallowed"},
    {"com9.x", "disallowed"},
};

TEST(ModulePath, FileElementTable) {
  for (const ElemCase& c : kElemCases) {
    SCOPED_TRACE(std::string("elem ") + c.elem);
    std::string error;
    const bool ok = checkFileElement(c.elem, &error);
    if (c.error == nullptr) {
      EXPECT_TRUE(ok) << error;
    } else {
      EXPECT_FALSE(ok);
      EXPECT_NE(error.find(c.error), std::string::npos) << "error was: " << error;
    }
  }
}

struct EscapeCase {
  const char* plain;
  const char* escaped;  // nullptr = escaping fails
};

const EscapeCase kPathEscapes[] = {
    {"github.com/GoogleCloudPlatform/omega", "github.com/!google!cloud!platform/omega"},
    {"github.com/Azure/azure-sdk-for-go", "github.com/!azure/azure-sdk-for-go"},
    {"github.com/Sirupsen/logrus", "github.com/!sirupsen/logrus"},
    {"rsc.io/quote", "rsc.io/quote"},
    {"x.y/ABC", "x.y/!a!b!c"},
    {"X.y/z", nullptr},
    {"x.y/z!", nullptr},
    {"x.y/z/v1", nullptr},
};

TEST(ModulePath, EscapePathTable) {
  for (const EscapeCase& c : kPathEscapes) {
    SCOPED_TRACE(std::string("path ") + c.plain);
    std::optional<std::string> got = escapePath(c.plain);
    if (c.escaped == nullptr) {
      EXPECT_FALSE(got.has_value());
      continue;
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, c.escaped);
    std::optional<std::string> back = unescapePath(*got);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, c.plain);
  }
}

struct UnescapeCase {
  const char* escaped;
  const char* plain;  // nullptr = rejected
};

const UnescapeCase kPathUnescapes[] = {
    {"github.com/!azure/x", "github.com/Azure/x"},
    {"github.com/!a!b!c", "github.com/ABC"},
    {"github.com/Azure/x", nullptr},   // raw uppercase
    {"github.com/!Azure/x", nullptr},  // '!' + uppercase
    {"github.com/!!azure/x", nullptr},
    {"github.com/!1/x", nullptr},
    {"github.com/!-/x", nullptr},
    {"github.com/x!", nullptr},  // trailing '!'
    {"github.com/!/x", nullptr},
    {"github.com/\xc3\xa9/x", nullptr},  // non-ASCII
    {"!github.com/x", nullptr},          // unescapes to "Github.com/x": uppercase first element
    {"github.com/%21azure/x", nullptr},  // percent forms are decoded by the caller
    {"github.com/x/v1", nullptr},        // unescapes fine but is not a valid path
    {"github.com/x//y", nullptr},
    {"", nullptr},
};

TEST(ModulePath, UnescapePathTable) {
  for (const UnescapeCase& c : kPathUnescapes) {
    SCOPED_TRACE(std::string("escaped ") + c.escaped);
    std::optional<std::string> got = unescapePath(c.escaped);
    if (c.plain == nullptr) {
      EXPECT_FALSE(got.has_value()) << *got;
    } else {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, c.plain);
    }
  }
}

const EscapeCase kVersionEscapes[] = {
    {"v1.0.0", "v1.0.0"},
    {"v1.0.0-RC1", "v1.0.0-!r!c1"},
    {"v2.0.0+incompatible", "v2.0.0+incompatible"},
    {"Master", "!master"},
    {"v1.0.0!", nullptr},  // '!' is never allowed in a version
    {"v1/0", nullptr},
    {"v1.", nullptr},
    {"", nullptr},
    {"vé", nullptr},
    {"con", nullptr},
};

TEST(ModulePath, EscapeVersionTable) {
  for (const EscapeCase& c : kVersionEscapes) {
    SCOPED_TRACE(std::string("version ") + c.plain);
    std::optional<std::string> got = escapeVersion(c.plain);
    if (c.escaped == nullptr) {
      EXPECT_FALSE(got.has_value());
      continue;
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, c.escaped);
    std::optional<std::string> back = unescapeVersion(*got);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, c.plain);
  }
}

const UnescapeCase kVersionUnescapes[] = {
    {"v1.0.0-!r!c1", "v1.0.0-RC1"}, {"v1.0.0", "v1.0.0"},  {"!master", "Master"},
    {"v1.0.0-RC1", nullptr},        {"v1.0.0-!", nullptr}, {"v1.0.0-!!r", nullptr},
    {"v1.0.0-!5", nullptr},         {"v1.", nullptr},      {"..", nullptr},
    {"v\xc3\xa9", nullptr},         {"", nullptr},
};

TEST(ModulePath, UnescapeVersionTable) {
  for (const UnescapeCase& c : kVersionUnescapes) {
    SCOPED_TRACE(std::string("escaped ") + c.escaped);
    std::optional<std::string> got = unescapeVersion(c.escaped);
    if (c.plain == nullptr) {
      EXPECT_FALSE(got.has_value()) << *got;
    } else {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, c.plain);
    }
  }
}

struct DecodeCase {
  const char* input;
  const char* output;  // nullptr = bad escape
};

const DecodeCase kDecodeCases[] = {
    {"plain", "plain"}, {"%21hello", "!hello"}, {"v1.0.0-%21r%21c1", "v1.0.0-!r!c1"},
    {"%2f", "/"},       {"%2F%2e", "/."},       {"a+b", "a+b"},    // '+' is not a space in a path
    {"%20", " "},       {"%25", "%"},           {"%252f", "%2f"},  // decoded once only
    {"", ""},           {"%", nullptr},         {"%2", nullptr},
    {"a%", nullptr},    {"%zz", nullptr},       {"%2g", nullptr},
    {"%-1", nullptr},
};

TEST(ModulePath, PercentDecodeTable) {
  for (const DecodeCase& c : kDecodeCases) {
    SCOPED_TRACE(std::string("input ") + c.input);
    std::optional<std::string> got = percentDecode(c.input);
    if (c.output == nullptr) {
      EXPECT_FALSE(got.has_value());
    } else {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, c.output);
    }
  }
  std::optional<std::string> nul = percentDecode("a%00b");
  ASSERT_TRUE(nul.has_value());
  EXPECT_EQ(*nul, std::string("a\0b", 3));
}

TEST(ModulePath, PercentEncodePathMatchesGo) {
  EXPECT_EQ(percentEncodePath("/127.0.0.1/!hello/@v/v1.0.0-!r!c1.info"),
            "/127.0.0.1/%21hello/@v/v1.0.0-%21r%21c1.info");
  EXPECT_EQ(percentEncodePath("a b%c#d?e"), "a%20b%25c%23d%3Fe");
  EXPECT_EQ(percentEncodePath("$&+,/:;=@-._~"), "$&+,/:;=@-._~");
  EXPECT_EQ(percentEncodePath("()[]{}^"), "%28%29%5B%5D%7B%7D%5E");
  EXPECT_EQ(*percentDecode(percentEncodePath("x y!z%")), "x y!z%");
}

}  // namespace
}  // namespace switchyard::rules
