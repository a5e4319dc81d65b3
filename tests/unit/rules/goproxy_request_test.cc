#include "rules/goproxy_request.h"

#include <gtest/gtest.h>

#include <string>

#include "rules/module_path.h"

namespace switchyard::rules {
namespace {

using Kind = GoproxyRequest::Kind;

struct AcceptCase {
  const char* path;
  Kind kind;
  const char* module;
  const char* version;
  const char* cache_key;
  bool immutable;
};

const AcceptCase kAccepted[] = {
    {"/golang.org/x/text/@v/list", Kind::kList, "golang.org/x/text", "",
     "mod/golang.org/x/text/@v/list", false},
    {"/golang.org/x/text/@latest", Kind::kLatest, "golang.org/x/text", "",
     "mod/golang.org/x/text/@latest", false},
    {"/golang.org/x/text/@v/v0.3.0.info", Kind::kInfo, "golang.org/x/text", "v0.3.0",
     "mod/golang.org/x/text/@v/v0.3.0.info", true},
    {"/golang.org/x/text/@v/v0.3.0.mod", Kind::kMod, "golang.org/x/text", "v0.3.0",
     "mod/golang.org/x/text/@v/v0.3.0.mod", true},
    {"/golang.org/x/text/@v/v0.3.0.zip", Kind::kZip, "golang.org/x/text", "v0.3.0",
     "mod/golang.org/x/text/@v/v0.3.0.zip", true},
    // The go command's wire form: '!' as %21 (SEMANTICS E.2, go-run).
    {"/127.0.0.1/%21hello/@v/v1.0.0-%21r%21c1.info", Kind::kInfo, "127.0.0.1/Hello", "v1.0.0-RC1",
     "mod/127.0.0.1/!hello/@v/v1.0.0-!r!c1.info", true},
    // A literal '!' is the same request.
    {"/127.0.0.1/!hello/@v/v1.0.0-!r!c1.info", Kind::kInfo, "127.0.0.1/Hello", "v1.0.0-RC1",
     "mod/127.0.0.1/!hello/@v/v1.0.0-!r!c1.info", true},
    // Lowercase hex digits and other harmless escapes decode the same way.
    {"/github.com/%21azure/azure-sdk-for-go/@v/%761.0.0.zip", Kind::kZip,
     "github.com/Azure/azure-sdk-for-go", "v1.0.0",
     "mod/github.com/!azure/azure-sdk-for-go/@v/v1.0.0.zip", true},
    // Queries and non-canonical versions are served but never immutable.
    {"/github.com/x/y/@v/master.info", Kind::kInfo, "github.com/x/y", "master",
     "mod/github.com/x/y/@v/master.info", false},
    {"/github.com/x/y/@v/v1.2.info", Kind::kInfo, "github.com/x/y", "v1.2",
     "mod/github.com/x/y/@v/v1.2.info", false},
    {"/github.com/x/y/@v/v1.2.3+meta.zip", Kind::kZip, "github.com/x/y", "v1.2.3+meta",
     "mod/github.com/x/y/@v/v1.2.3+meta.zip", false},
    {"/github.com/x/y/@v/!master.mod", Kind::kMod, "github.com/x/y", "Master",
     "mod/github.com/x/y/@v/!master.mod", false},
    {"/github.com/docker/docker/@v/v17.3.0+incompatible.zip", Kind::kZip,
     "github.com/docker/docker", "v17.3.0+incompatible",
     "mod/github.com/docker/docker/@v/v17.3.0+incompatible.zip", true},
    {"/github.com/x/y/@v/v0.0.0-20191109021931-daa7c04131f5.mod", Kind::kMod, "github.com/x/y",
     "v0.0.0-20191109021931-daa7c04131f5",
     "mod/github.com/x/y/@v/v0.0.0-20191109021931-daa7c04131f5.mod", true},
    // A version that itself ends in ".info" is still just a version.
    {"/x.y/z/@v/v1.0.0.info.info", Kind::kInfo, "x.y/z", "v1.0.0.info",
     "mod/x.y/z/@v/v1.0.0.info.info", false},
    {"/x.y/z/@v/list.info", Kind::kInfo, "x.y/z", "list", "mod/x.y/z/@v/list.info", false},
    {"/rsc.io/quote/v3/@v/v3.1.0.mod", Kind::kMod, "rsc.io/quote/v3", "v3.1.0",
     "mod/rsc.io/quote/v3/@v/v3.1.0.mod", true},
    {"/gopkg.in/yaml.v2/@v/v2.4.0.info", Kind::kInfo, "gopkg.in/yaml.v2", "v2.4.0",
     "mod/gopkg.in/yaml.v2/@v/v2.4.0.info", true},
    {"/sumdb/sum.golang.org/supported", Kind::kSumdbSupported, "", "",
     "sumdb/sum.golang.org/supported", false},
    {"/sumdb/sum.golang.org/latest", Kind::kSumdbLatest, "", "", "sumdb/sum.golang.org/latest",
     false},
    {"/sumdb/sum.golang.org/lookup/golang.org/x/text@v0.3.0", Kind::kSumdbLookup,
     "golang.org/x/text", "v0.3.0", "sumdb/sum.golang.org/lookup/golang.org/x/text@v0.3.0", true},
    {"/sumdb/sum.golang.org/lookup/github.com/%21azure/x@v1.0.0-%21r%21c1", Kind::kSumdbLookup,
     "github.com/Azure/x", "v1.0.0-RC1",
     "sumdb/sum.golang.org/lookup/github.com/!azure/x@v1.0.0-!r!c1", true},
    {"/sumdb/sum.golang.org/lookup/x.y/z@master", Kind::kSumdbLookup, "x.y/z", "master",
     "sumdb/sum.golang.org/lookup/x.y/z@master", false},
    {"/sumdb/sum.golang.org/tile/8/0/001", Kind::kSumdbTile, "", "",
     "sumdb/sum.golang.org/tile/8/0/001", true},
    {"/sumdb/sum.golang.org/tile/8/0/001.p/5", Kind::kSumdbTile, "", "",
     "sumdb/sum.golang.org/tile/8/0/001.p/5", false},
    {"/sumdb/sum.golang.org/tile/8/data/x001/x234/567", Kind::kSumdbTile, "", "",
     "sumdb/sum.golang.org/tile/8/data/x001/x234/567", true},
    {"/sumdb/sum.golang.org/tile/8/2/000.p/255", Kind::kSumdbTile, "", "",
     "sumdb/sum.golang.org/tile/8/2/000.p/255", false},
    {"/sumdb/sum.golang.org/tile/1/63/999", Kind::kSumdbTile, "", "",
     "sumdb/sum.golang.org/tile/1/63/999", true},
    {"/sumdb/sum.golang.org/tile/30/0/x999/000.p/1073741823", Kind::kSumdbTile, "", "",
     "sumdb/sum.golang.org/tile/30/0/x999/000.p/1073741823", false},
    {"/sumdb/localhost:8443/latest", Kind::kSumdbLatest, "", "", "sumdb/localhost:8443/latest",
     false},
    {"/sumdb/db.example.com/sub/dir/supported", Kind::kSumdbSupported, "", "",
     "sumdb/db.example.com/sub/dir/supported", false},
    // A one-label name that happens to be an endpoint word is still a name.
    {"/sumdb/latest/latest", Kind::kSumdbLatest, "", "", "sumdb/latest/latest", false},
};

TEST(GoproxyRequest, AcceptTable) {
  for (const AcceptCase& c : kAccepted) {
    SCOPED_TRACE(std::string("path ") + c.path);
    GoproxyRequest req;
    std::string error;
    ASSERT_TRUE(parseGoproxyRequest(c.path, &req, &error)) << error;
    EXPECT_EQ(req.kind, c.kind);
    EXPECT_EQ(req.module, c.module);
    EXPECT_EQ(req.version, c.version);
    EXPECT_EQ(req.cacheKey(), c.cache_key);
    EXPECT_EQ(req.immutable, c.immutable);
    if (!req.module.empty()) {
      EXPECT_EQ(escapePath(req.module).value_or("?"), req.escaped_module);
    }
    if (!req.version.empty()) {
      EXPECT_EQ(escapeVersion(req.version).value_or("?"), req.escaped_version);
    }
    // The canonical upstream path parses back to the same request.
    GoproxyRequest again;
    ASSERT_TRUE(parseGoproxyRequest(req.upstreamPath(), &again, &error))
        << req.upstreamPath() << ": " << error;
    EXPECT_EQ(again.cacheKey(), req.cacheKey());
    EXPECT_EQ(again.kind, req.kind);
    EXPECT_EQ(again.module, req.module);
    EXPECT_EQ(again.version, req.version);
    EXPECT_EQ(again.immutable, req.immutable);
  }
}

TEST(GoproxyRequest, DetailsOfSumdbAndUpstream) {
  GoproxyRequest req;
  std::string error;
  ASSERT_TRUE(
      parseGoproxyRequest("/sumdb/sum.golang.org/tile/8/data/x001/x234/567.p/9", &req, &error))
      << error;
  EXPECT_EQ(req.sumdb_name, "sum.golang.org");
  EXPECT_EQ(req.sumdb_rest, "tile/8/data/x001/x234/567.p/9");
  EXPECT_EQ(req.tile_height, 8);
  EXPECT_EQ(req.tile_level, -1);
  EXPECT_EQ(req.tile_index, 1234567);
  EXPECT_EQ(req.tile_width, 9);
  EXPECT_FALSE(req.immutable);

  ASSERT_TRUE(parseGoproxyRequest("/sumdb/sum.golang.org/lookup/x.y/!z@v1.0.0", &req, &error));
  EXPECT_EQ(req.sumdb_rest, "lookup/x.y/!z@v1.0.0");
  EXPECT_EQ(req.escaped_module, "x.y/!z");
  EXPECT_EQ(req.upstreamPath(), "/sumdb/sum.golang.org/lookup/x.y/%21z@v1.0.0");

  ASSERT_TRUE(parseGoproxyRequest("/127.0.0.1/!hello/@v/v1.0.0-!r!c1.info", &req, &error));
  EXPECT_EQ(req.upstreamPath(), "/127.0.0.1/%21hello/@v/v1.0.0-%21r%21c1.info");
  EXPECT_EQ(req.escaped_version, "v1.0.0-!r!c1");
}

struct RejectCase {
  const char* path;
  const char* error;  // substring of the error
};

const RejectCase kRejected[] = {
    {"", "must start with '/'"},
    {"golang.org/x/text/@v/list", "must start with '/'"},
    {"/", "empty path element"},
    {"/golang.org/x/text/@v/list?x=1", "query"},
    {"/golang.org/x/text/@v/list#frag", "query or fragment"},
    {"/golang.org/x/text/@v/list/", "empty path element"},
    {"/golang.org//x/text/@v/list", "empty path element"},
    {"//golang.org/x/text/@v/list", "empty path element"},
    {"/golang.org/x/../text/@v/list", "dot segment"},
    {"/golang.org/x/%2e%2e/text/@v/list", "dot segment"},
    {"/golang.org/x/./text/@v/list", "dot segment"},
    {"/golang.org/x%2ftext/@v/list", "encoded path separator"},
    {"/golang.org/x%2Ftext/@v/list", "encoded path separator"},
    {"/golang.org/x%5ctext/@v/list", "encoded path separator"},
    {"/x.y/z/@v/v1.0.0%2f..%2f..%2fetc.info", "encoded path separator"},
    {"/x.y/z/@v/v1%00.info", "control character"},
    {"/x.y/z/@v/v1%0a.info", "control character"},
    {"/x.y/z/@v/v1%zz.info", "bad percent-escape"},
    {"/x.y/z/@v/v1%2.info", "bad percent-escape"},
    {"/x.y/z/@v/v1.0.0%", "bad percent-escape"},
    {"/golang.org/x/text", "no /@v/ or /@latest"},
    {"/golang.org/x/text/@v", "unknown GOPROXY endpoint"},
    {"/golang.org/x/text/@v/", "empty path element"},
    {"/golang.org/x/text/@v/v1.0.0", "unknown GOPROXY endpoint"},
    {"/golang.org/x/text/@v/v1.0.0.tar", "unknown GOPROXY endpoint"},
    {"/golang.org/x/text/@v/.info", "unknown GOPROXY endpoint"},
    {"/golang.org/x/text/@v/list/extra", "unknown GOPROXY endpoint"},
    {"/golang.org/x/text/@latest/x", "unknown GOPROXY endpoint"},
    {"/golang.org/x/text/@upgrade", "unknown GOPROXY endpoint"},
    {"/golang.org/x/text/@V/list", "unknown GOPROXY endpoint"},
    {"/@v/list", "missing module path"},
    {"/@latest", "missing module path"},
    // Module path validity.
    {"/github.com/Azure/x/@v/list", "invalid escaped module path"},    // raw uppercase
    {"/github.com/%41zure/x/@v/list", "invalid escaped module path"},  // encoded uppercase
    {"/github.com/!Azure/x/@v/list", "invalid escaped module path"},
    {"/github.com/!!azure/x/@v/list", "invalid escaped module path"},
    {"/github.com/x!/@v/list", "invalid escaped module path"},
    {"/github.com/x%21/@v/list", "invalid escaped module path"},
    {"/github.com/!1x/@v/list", "invalid escaped module path"},
    {"/github.com/%c3%a9/@v/list", "invalid escaped module path"},
    {"/github.com/\xc3\xa9/@v/list", "invalid escaped module path"},
    {"/github.com/x/v0/@v/list", "invalid version"},
    {"/github.com/x/v1/@v/list", "invalid version"},
    {"/gopkg.in/yaml/@v/list", "invalid version"},
    {"/github.com/con/@v/list", "disallowed"},
    {"/github.com/x~1/@v/list", "trailing tilde and digits"},
    {"/-github.com/x/@v/list", "leading dash"},
    {"/github.com/.x/@v/list", "leading dot"},
    {"/github.com/x./@v/list", "trailing dot"},
    {"/github.com/.../@v/list", "invalid path element"},
    {"/localhost/x/@v/list", "missing dot in first path element"},
    {"/Github.com/x/@v/list", "invalid escaped module path"},
    {"/!github.com/x/@v/list", "invalid char 'G' in first path element"},
    {"/github.com/x%20y/@v/list", "invalid char ' '"},
    {"/github.com/x+y/@v/list", "invalid char '+'"},
    // Version validity.
    {"/x.y/z/@v/V1.0.0.info", "invalid escaped version"},
    {"/x.y/z/@v/v1.0.0-!.info", "invalid escaped version"},
    {"/x.y/z/@v/v1.0.0-!R.info", "invalid escaped version"},
    {"/x.y/z/@v/v1..info", "invalid escaped version"},  // trailing dot
    {"/x.y/z/@v/v1%3a0.info", "invalid escaped version"},
    {"/x.y/z/@v/v1*.zip", "invalid escaped version"},
    {"/x.y/z/@v/nul.zip", "invalid escaped version"},
    {"/x.y/z/@v/v%c3%a9.zip", "invalid escaped version"},
    // Checksum database.
    {"/sumdb", "unknown sumdb endpoint"},
    {"/sumdb/sum.golang.org", "unknown sumdb endpoint"},
    {"/sumdb/sum.golang.org/", "empty path element"},
    {"/sumdb/sum.golang.org/other", "unknown sumdb endpoint"},
    {"/sumdb/sum.golang.org/supported/x", "unknown sumdb endpoint"},
    {"/sumdb/sum.golang.org/latest/x", "unknown sumdb endpoint"},
    {"/sumdb/Sum.golang.org/latest", "invalid sumdb name"},
    {"/sumdb/sum..golang.org/latest", "invalid sumdb name"},
    {"/sumdb/.sum.golang.org/latest", "invalid sumdb name"},
    {"/sumdb/sum.golang.org./latest", "invalid sumdb name"},
    {"/sumdb/-sum.golang.org/latest", "invalid sumdb name"},
    {"/sumdb/sum_db.org/latest", "invalid sumdb name"},
    {"/sumdb/db.org:0/latest", "invalid sumdb name"},
    {"/sumdb/db.org:65536/latest", "invalid sumdb name"},
    {"/sumdb/db.org:08443/latest", "invalid sumdb name"},
    {"/sumdb/db.org:/latest", "invalid sumdb name"},
    {"/sumdb/db.org/a..b/latest", "invalid sumdb name element"},
    {"/sumdb/db.org/A/latest", "invalid sumdb name element"},
    {"/sumdb/db.org/../latest", "dot segment"},
    {"/sumdb/sum.golang.org/lookup", "missing module@version"},
    {"/sumdb/sum.golang.org/lookup/golang.org/x/text", "without '@'"},
    {"/sumdb/sum.golang.org/lookup/golang.org/x/text@", "invalid escaped version"},
    {"/sumdb/sum.golang.org/lookup/@v1.0.0", "invalid escaped module path"},
    {"/sumdb/sum.golang.org/lookup/github.com/Azure/x@v1.0.0", "invalid escaped module path"},
    {"/sumdb/sum.golang.org/lookup/x.y/z@v1.0.0/extra", "invalid escaped version"},
    // Tiles.
    {"/sumdb/sum.golang.org/tile", "malformed tile path"},
    {"/sumdb/sum.golang.org/tile/8/0", "malformed tile path"},
    {"/sumdb/sum.golang.org/tile/0/0/001", "malformed tile height"},
    {"/sumdb/sum.golang.org/tile/31/0/001", "malformed tile height"},
    {"/sumdb/sum.golang.org/tile/08/0/001", "malformed tile height"},
    {"/sumdb/sum.golang.org/tile/+8/0/001", "malformed tile height"},
    {"/sumdb/sum.golang.org/tile/8/-1/001", "malformed tile level"},
    {"/sumdb/sum.golang.org/tile/8/00/001", "malformed tile level"},
    {"/sumdb/sum.golang.org/tile/8/64/001", "malformed tile level"},
    {"/sumdb/sum.golang.org/tile/8/DATA/001", "malformed tile level"},
    {"/sumdb/sum.golang.org/tile/8/0/1", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/0001", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/x001", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/001/234", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/x000/234", "malformed tile index"},  // leading zero group
    {"/sumdb/sum.golang.org/tile/8/0/x1/234", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/abc", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/x001/x002/x003/x004/x005/x006/x007/008",
     "malformed tile index"},  // does not fit in int64
    {"/sumdb/sum.golang.org/tile/8/0/001.p/0", "malformed partial tile width"},
    {"/sumdb/sum.golang.org/tile/8/0/001.p/256", "malformed partial tile width"},
    {"/sumdb/sum.golang.org/tile/8/0/001.p/05", "malformed partial tile width"},
    {"/sumdb/sum.golang.org/tile/1/0/001.p/1/x", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/.p/5", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/001.p", "malformed tile index"},
    {"/sumdb/sum.golang.org/tile/8/0/001.q/5", "malformed tile index"},
};

TEST(GoproxyRequest, RejectTable) {
  for (const RejectCase& c : kRejected) {
    SCOPED_TRACE(std::string("path ") + c.path);
    GoproxyRequest req;
    std::string error;
    EXPECT_FALSE(parseGoproxyRequest(c.path, &req, &error)) << req.cacheKey();
    EXPECT_NE(error.find(c.error), std::string::npos) << "error was: " << error;
  }
}

TEST(GoproxyRequest, LengthLimits) {
  GoproxyRequest req;
  std::string error;
  const std::string long_elem(kMaxGoproxyElementLength + 1, 'a');
  EXPECT_FALSE(parseGoproxyRequest("/x.y/" + long_elem + "/@v/list", &req, &error));
  EXPECT_NE(error.find("longer than"), std::string::npos) << error;
  const std::string ok_elem(kMaxGoproxyElementLength, 'a');
  EXPECT_TRUE(parseGoproxyRequest("/x.y/" + ok_elem + "/@v/list", &req, &error)) << error;

  std::string long_path = "/x.y";
  while (long_path.size() <= kMaxGoproxyPathLength) {
    long_path += "/abcdefgh";
  }
  long_path += "/@v/list";
  EXPECT_FALSE(parseGoproxyRequest(long_path, &req, &error));
  EXPECT_NE(error.find("longer than"), std::string::npos) << error;
}

TEST(GoproxyRequest, NullErrorPointerIsAllowed) {
  GoproxyRequest req;
  EXPECT_FALSE(parseGoproxyRequest("/nope", &req, nullptr));
  EXPECT_TRUE(parseGoproxyRequest("/x.y/@v/list", &req, nullptr));
}

TEST(GoproxyRequest, KindNames) {
  EXPECT_STREQ(goproxyRequestKindName(Kind::kList), "list");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kInfo), "info");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kMod), "mod");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kZip), "zip");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kLatest), "latest");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kSumdbSupported), "sumdb-supported");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kSumdbLatest), "sumdb-latest");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kSumdbLookup), "sumdb-lookup");
  EXPECT_STREQ(goproxyRequestKindName(Kind::kSumdbTile), "sumdb-tile");
}

struct LookupCase {
  const char* rest;
  const char* module;  // nullptr = rejected
  const char* version;
};

const LookupCase kLookups[] = {
    {"lookup/golang.org/x/text@v0.3.0", "golang.org/x/text", "v0.3.0"},
    {"lookup/github.com/%21azure/x@v1.0.0", "github.com/Azure/x", "v1.0.0"},
    {"lookup/github.com/!azure/x@v1.0.0", "github.com/Azure/x", "v1.0.0"},
    {"lookup/x.y/z@v1@x", "x.y/z", "v1@x"},  // '@' is legal in a version
    {"lookup/github.com/Azure/x@v1.0.0", nullptr, nullptr},
    {"lookup/x.y/z", nullptr, nullptr},
    {"latest", nullptr, nullptr},
    {"lookup", nullptr, nullptr},
    {"lookup/x.y/z@v1.0.0?x", nullptr, nullptr},
    {"lookup/x.y%2fz@v1.0.0", nullptr, nullptr},
    {"", nullptr, nullptr},
};

TEST(GoproxyRequest, SumdbLookupTable) {
  for (const LookupCase& c : kLookups) {
    SCOPED_TRACE(std::string("rest ") + c.rest);
    std::string module;
    std::string version;
    std::string error;
    const bool ok = parseSumdbLookup(c.rest, &module, &version, &error);
    if (c.module == nullptr) {
      EXPECT_FALSE(ok);
      EXPECT_FALSE(error.empty());
    } else {
      ASSERT_TRUE(ok) << error;
      EXPECT_EQ(module, c.module);
      EXPECT_EQ(version, c.version);
    }
  }
}

}  // namespace
}  // namespace switchyard::rules

namespace switchyard::rules {
namespace {

// Which proxied paths are read as module traffic (for the leak guard and the
// cache), and which are not.
TEST(ModuleReferenceOf, Table) {
  struct RefCase {
    const char* host;
    const char* path;
    const char* module;  // nullptr: not module traffic
    bool sumdb_lookup;
    const char* base;
  };
  const RefCase cases[] = {
      {"proxy.golang.org", "/github.com/!azure/x/@v/list", "github.com/Azure/x", false, ""},
      {"proxy.golang.org", "/github.com/%21azure/x/@v/v1.0.0.zip", "github.com/Azure/x", false, ""},
      {"proxy.golang.org", "/golang.org/x/text/@latest", "golang.org/x/text", false, ""},
      {"art.example", "/api/go/proxy/github.com/a/b/@v/v1.2.3.mod", "github.com/a/b", false,
       "/api/go/proxy"},
      {"proxy.golang.org", "/sumdb/sum.golang.org/lookup/github.com/a/b@v1.0.0", "github.com/a/b",
       true, ""},
      {"sum.golang.org", "/lookup/git.company.com/x@v1.0.0", "git.company.com/x", true, ""},
      {"SUM.golang.org", "/lookup/git.company.com/x@v1.0.0", "git.company.com/x", true, ""},
      {"db.example", "/sub/lookup/example.com/m@v0.1.0", "example.com/m", true, "/sub"},
      {"proxy.golang.org", "/sumdb/sum.golang.org/supported", nullptr, false, ""},
      {"proxy.golang.org", "/sumdb/sum.golang.org/latest", nullptr, false, ""},
      {"proxy.golang.org", "/sumdb/sum.golang.org/tile/8/0/001", nullptr, false, ""},
      {"sum.golang.org", "/latest", nullptr, false, ""},
      {"sum.golang.org", "/lookup/not a module@v1", nullptr, false, ""},
      {"deb.debian.org", "/debian/dists/bookworm/InRelease", nullptr, false, ""},
      {"registry.npmjs.org", "/@types/node", nullptr, false, ""},
      {"registry.npmjs.org", "/@babel/core/-/core-7.0.0.tgz", nullptr, false, ""},
      {"proxy.golang.org", "/", nullptr, false, ""},
      {"proxy.golang.org", "", nullptr, false, ""},
      {"proxy.golang.org", "/github.com/x/y/@v/list?x=1", nullptr, false, ""},
      {"proxy.golang.org", "/github.com/x/../y/@v/list", nullptr, false, ""},
      {"proxy.golang.org", "/github.com/x/y/@v/v1.0.0.tar", nullptr, false, ""},
  };
  for (const RefCase& c : cases) {
    SCOPED_TRACE(std::string(c.host) + c.path);
    auto ref = moduleReferenceOf(c.host, c.path, "db.example/sub");
    if (std::string(c.host) != "db.example") {
      ref = moduleReferenceOf(c.host, c.path, "sum.golang.org");
    }
    if (c.module == nullptr) {
      EXPECT_FALSE(ref.has_value()) << ref->request.module;
      continue;
    }
    ASSERT_TRUE(ref.has_value());
    EXPECT_EQ(ref->request.module, c.module);
    EXPECT_EQ(ref->sumdb_lookup, c.sumdb_lookup);
    EXPECT_EQ(ref->base, c.base);
  }
}

}  // namespace
}  // namespace switchyard::rules
