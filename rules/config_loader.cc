#include "rules/config_loader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <sstream>

#include "rules/units.h"

namespace switchyard::rules {

namespace {

// A broken file (or a fuzzer) can produce an error per line; past this many
// the rest are counted, not listed, so `check` output stays readable.
constexpr size_t kMaxErrors = 200;
// A config is a few kilobytes; anything this big is the wrong file.
constexpr size_t kMaxConfigBytes = 16u << 20;
// Messages quote user text; long values are cut so each error stays one line.
constexpr size_t kMaxQuotedChars = 80;

// ---------------------------------------------------------------------------
// Text helpers.

// `text` in double quotes, control bytes escaped and long text cut, so that a
// message always fits on one line whatever the document contained.
std::string quote(std::string_view text) {
  std::string out = "\"";
  size_t shown = std::min(text.size(), kMaxQuotedChars);
  for (size_t i = 0; i < shown; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (shown < text.size()) {
    out += "...";
  }
  return out + "\"";
}

// Control bytes escaped as \xNN: every error stays on one line even when it
// names a key or repeats a yaml-cpp message that contains them.
std::string oneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool isDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses [0-9]+ into *out; false on anything else or on overflow.
bool parseDecimal(std::string_view text, uint64_t* out) {
  if (!isDigits(text)) {
    return false;
  }
  uint64_t value = 0;
  for (char c : text) {
    if (__builtin_mul_overflow(value, 10u, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(c - '0'), &value)) {
      return false;
    }
  }
  *out = value;
  return true;
}

std::string_view trimBlanks(std::string_view text, size_t* leading) {
  size_t start = 0;
  while (start < text.size() && (text[start] == ' ' || text[start] == '\t')) {
    ++start;
  }
  size_t end = text.size();
  while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t')) {
    --end;
  }
  *leading = start;
  return text.substr(start, end - start);
}

// Case-insensitive Levenshtein distance, for "did you mean" suggestions.
size_t editDistance(std::string_view a, std::string_view b) {
  std::string x = lower(a);
  std::string y = lower(b);
  std::vector<size_t> row(y.size() + 1);
  for (size_t j = 0; j <= y.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= x.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= y.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (x[i - 1] == y[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[y.size()];
}

void setError(std::string* error, std::string message) {
  if (error != nullptr) {
    *error = std::move(message);
  }
}

// Port 0 asks the kernel for any free port, so "127.0.0.1:0" twice means two
// different listeners (tests do this), never a clash.
bool isAnyPort(std::string_view address) {
  return address.size() >= 2 && address.substr(address.size() - 2) == ":0";
}

// ---------------------------------------------------------------------------
// YAML value kinds, resolved with the YAML 1.2 core schema: only true/false
// are booleans, so `GOPROXY: off` and `level: off` stay strings (YAML 1.1,
// which yaml-cpp's as<bool>() follows, would read "off", "yes", "on" as
// booleans). Quoted scalars are always strings.

enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap, kTagged };

bool isYamlBool(std::string_view s) {
  return s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE";
}

bool isYamlInt(std::string_view s) {
  auto all = [](std::string_view t, auto pred) {
    return !t.empty() && std::all_of(t.begin(), t.end(), pred);
  };
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o') {
    return all(s.substr(2), [](char c) { return c >= '0' && c <= '7'; });
  }
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x') {
    return all(s.substr(2), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  }
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    s.remove_prefix(1);
  }
  return isDigits(s);
}

bool isYamlFloat(std::string_view s) {
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    return true;
  }
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    s.remove_prefix(1);
  }
  if (s == ".inf" || s == ".Inf" || s == ".INF") {
    return true;
  }
  size_t i = 0;
  size_t int_digits = 0;
  while (i < s.size() && isDigits(s.substr(i, 1))) {
    ++i;
    ++int_digits;
  }
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && isDigits(s.substr(i, 1))) {
      ++i;
      ++frac_digits;
    }
  }
  if (int_digits == 0 && frac_digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
      ++i;
    }
    if (!isDigits(s.substr(i))) {
      return false;
    }
    i = s.size();
  }
  return i == s.size();
}

Kind kindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Kind::kNull;
    case YAML::NodeType::Sequence:
      return Kind::kList;
    case YAML::NodeType::Map:
      return Kind::kMap;
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") {
    return Kind::kString;
  }
  if (tag != "?") {
    return Kind::kTagged;
  }
  const std::string& text = node.Scalar();
  if (isYamlBool(text)) {
    return Kind::kBool;
  }
  if (isYamlInt(text)) {
    return Kind::kInt;
  }
  if (isYamlFloat(text)) {
    return Kind::kFloat;
  }
  return Kind::kString;
}

// "integer 5", "string \"x\"", "a list"...: what the user actually wrote.
std::string describe(const YAML::Node& node) {
  switch (kindOf(node)) {
    case Kind::kNull:
      return "nothing (an empty value)";
    case Kind::kBool:
      return "boolean " + node.Scalar();
    case Kind::kInt:
      return "integer " + node.Scalar();
    case Kind::kFloat:
      return "number " + node.Scalar();
    case Kind::kString:
      return "string " + quote(node.Scalar());
    case Kind::kList:
      return "a list";
    case Kind::kMap:
      return "a mapping";
    case Kind::kTagged:
      return "a value tagged " + quote(node.Tag());
  }
  return "?";
}

// ---------------------------------------------------------------------------
// The keys of each section. Unknown keys are errors; these tables also feed
// the "did you mean" and "belongs in" hints.

using Keys = std::span<const std::string_view>;

constexpr std::array<std::string_view, 11> kTopKeys{"listen", "admin",   "env", "inherit_env",
                                                    "rules",  "resolve", "tls", "cache",
                                                    "access", "limits",  "log"};
constexpr std::array<std::string_view, 8> kRuleKeys{
    "name", "match", "action", "mirrors", "upstream", "intercept", "cache", "allow_private"};
constexpr std::array<std::string_view, 2> kMatchKeys{"hosts", "modules"};
constexpr std::array<std::string_view, 2> kTlsKeys{"ca_dir", "upstream_ca_file"};
constexpr std::array<std::string_view, 3> kCacheKeys{"dir", "max_size", "mutable_ttl"};
constexpr std::array<std::string_view, 5> kAccessKeys{"allow_clients", "connect_ports",
                                                      "deny_private_destinations", "users_file",
                                                      "admin_allow_clients"};
constexpr std::array<std::string_view, 10> kLimitsKeys{"max_connections",
                                                       "header_timeout",
                                                       "idle_timeout",
                                                       "connect_timeout",
                                                       "response_timeout",
                                                       "max_header_bytes",
                                                       "max_connections_per_client",
                                                       "drain_timeout",
                                                       "busy_poll",
                                                       "splice"};
constexpr std::array<std::string_view, 3> kLogKeys{"level", "format", "decisions"};
constexpr std::array<std::string_view, 4> kActions{"direct", "upstream", "mirror", "deny"};
constexpr std::array<std::string_view, 6> kLogLevels{"trace", "debug", "info",
                                                     "warn",  "error", "off"};
constexpr std::array<std::string_view, 2> kLogFormats{"text", "json"};
// An empty key table means "any key" (resolve: maps host names).
constexpr Keys kAnyKey{};

struct Section {
  std::string_view where;  // how a person would name the place
  Keys keys;
};
const std::array<Section, 9> kSections{{
    {"the top level", kTopKeys},
    {"\"env\"", kEnvNames},
    {"a rule (under \"rules\")", kRuleKeys},
    {"a rule's \"match\"", kMatchKeys},
    {"\"tls\"", kTlsKeys},
    {"\"cache\"", kCacheKeys},
    {"\"access\"", kAccessKeys},
    {"\"limits\"", kLimitsKeys},
    {"\"log\"", kLogKeys},
}};

bool contains(Keys keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string joinKeys(Keys keys) {
  std::string out;
  for (std::string_view key : keys) {
    out += (out.empty() ? "" : ", ") + std::string(key);
  }
  return out;
}

// "unknown key "listn" (did you mean "listen"?)", or where the key belongs
// when it is a real key of another section, or the list of valid keys.
std::string unknownKeyMessage(std::string_view key, Keys known) {
  std::string message = "unknown key " + quote(key);
  std::string_view best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (std::string_view candidate : known) {
    size_t distance = editDistance(key, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (!best.empty() && best_distance <= std::max<size_t>(1, key.size() / 3)) {
    return message + " (did you mean " + quote(best) + "?)";
  }
  for (const Section& section : kSections) {
    if (section.keys.data() == known.data()) {
      continue;
    }
    for (std::string_view candidate : section.keys) {
      if (lower(candidate) == lower(key)) {
        return message + " (" + quote(candidate) + " belongs in " + std::string(section.where) +
               ")";
      }
    }
  }
  return message + " (valid keys: " + joinKeys(known) + ")";
}

// ---------------------------------------------------------------------------
// Positions and the error collector.

struct Position {
  int line = 1;  // 1-based
  int column = 1;
};

Position positionOf(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) {
    return Position{};
  }
  return Position{mark.line + 1, mark.column + 1};
}

// Collects problems with their position and formats them, in file order,
// as "file:line:col: message".
class Errors {
 public:
  explicit Errors(std::string file) : file_(std::move(file)) {}

  void add(Position at, const std::string& message) {
    if (problems_.size() < kMaxErrors) {
      problems_.push_back(Problem{at, oneLine(message)});
    } else {
      ++dropped_;
    }
  }
  size_t count() const { return problems_.size() + dropped_; }

  std::vector<std::string> format() const {
    std::vector<Problem> sorted = problems_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Problem& a, const Problem& b) {
      return a.at.line != b.at.line ? a.at.line < b.at.line : a.at.column < b.at.column;
    });
    std::vector<std::string> out;
    out.reserve(sorted.size() + 1);
    for (const Problem& problem : sorted) {
      out.push_back(file_ + ":" + std::to_string(problem.at.line) + ":" +
                    std::to_string(problem.at.column) + ": " + problem.message);
    }
    if (dropped_ > 0) {
      Position last = sorted.back().at;
      out.push_back(file_ + ":" + std::to_string(last.line) + ":" + std::to_string(last.column) +
                    ": " + std::to_string(dropped_) + " more errors not shown");
    }
    return out;
  }

 private:
  struct Problem {
    Position at;
    std::string message;
  };
  std::string file_;
  std::vector<Problem> problems_;
  size_t dropped_ = 0;
};

// A value in the document, with its dotted path for messages
// ("limits.header_timeout", "listen[1]") and where to point at it: the
// value itself, or its key when the value is empty (yaml-cpp places an empty
// value's mark on the next line, which would confuse the reader).
struct Field {
  YAML::Node node;
  std::string path;
  Position pos;
  Position key_pos;  // the key's position; pos for list entries
};

// One entry of a list given as a YAML sequence or a comma-separated string.
struct Item {
  std::string text;
  Field field;
};

// Where the first two documents of a YAML stream start. YAML::LoadAll is not
// used: yaml-cpp 0.7 loops forever, allocating, on some invalid input (a
// stray ',' begins an empty document that consumes nothing, again and
// again). Two calls are enough to see a second document, and a "second"
// document at the same place as the first is that bug, i.e. a syntax error.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;

  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::vector<YAML::Mark> firstDocumentStarts(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  if (parser.HandleNextDocument(starts)) {
    parser.HandleNextDocument(starts);
  }
  return starts.marks;
}

// ---------------------------------------------------------------------------
// The loader: one method per section, all writing into config_ and errors_.

class Loader {
 public:
  Loader(std::string_view source, std::string file, const EnvMap& process_env)
      : source_(source), file_(std::move(file)), process_env_(process_env), errors_(file_) {}

  LoadResult load() {
    try {
      std::string text(source_);
      YAML::Node root = YAML::Load(text);
      std::vector<YAML::Mark> starts = firstDocumentStarts(text);
      if (starts.size() > 1 && starts[1].pos == starts[0].pos) {
        errors_.add(positionOf(starts[1]), "YAML syntax error: unexpected text here");
      } else if (starts.size() > 1) {
        errors_.add(positionOf(starts[1]), "only one YAML document is allowed; found a second one");
      } else if (root.IsNull()) {
        errors_.add(Position{},
                    "empty config: expected a mapping of settings (listen, env, rules, ...)");
      } else {
        loadDocument(root);
      }
    } catch (const YAML::Exception& e) {
      // Syntax errors (ParserException) and anything else yaml-cpp throws
      // stop here; they carry the position where reading stopped.
      errors_.add(positionOf(e.mark), "YAML syntax error: " + e.msg);
    }
    LoadResult result;
    result.errors = errors_.format();
    if (result.errors.empty()) {
      result.config = std::move(config_);
    }
    return result;
  }

 private:
  using FieldMap = std::map<std::string, Field>;

  // --- Generic readers. Each reports its own errors and returns nullopt. ---

  void error(const Field& field, const std::string& message) {
    errors_.add(field.pos, (field.path.empty() ? "" : field.path + ": ") + message);
  }

  SourcePos sourcePos(Position at) const {
    SourcePos pos;
    pos.file = file_;
    pos.line = at.line;
    pos.column = at.column;
    return pos;
  }

  static std::string childPath(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
  }

  // Calls `handler` for each key of the mapping `map` in document order,
  // after rejecting non-mappings, non-scalar keys, duplicates and keys not
  // in `known` (kAnyKey: every key is allowed). An empty value (null) is an
  // empty section: nothing to do.
  void forEachKey(const Field& map, Keys known,
                  const std::function<void(const std::string&, const Field&)>& handler) {
    if (kindOf(map.node) == Kind::kNull) {
      return;
    }
    if (!map.node.IsMap()) {
      error(map, "expected a mapping, got " + describe(map.node));
      return;
    }
    std::map<std::string, Position> seen;
    for (const auto& entry : map.node) {
      const YAML::Node& key = entry.first;
      const YAML::Node& value = entry.second;
      Position key_pos = positionOf(key.Mark());
      if (!key.IsScalar()) {
        errors_.add(key_pos,
                    childPath(map.path, "?") + ": a key must be a name, got " + describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      std::string path = childPath(map.path, name);
      auto [first, inserted] = seen.emplace(name, key_pos);
      if (!inserted) {
        errors_.add(key_pos, path + ": duplicate key (first at line " +
                                 std::to_string(first->second.line) + ")");
        continue;
      }
      if (!known.empty() && !contains(known, name)) {
        errors_.add(key_pos,
                    (map.path.empty() ? "" : map.path + ": ") + unknownKeyMessage(name, known));
        continue;
      }
      Position value_pos = kindOf(value) == Kind::kNull ? key_pos : positionOf(value.Mark());
      handler(name, Field{value, path, value_pos, key_pos});
    }
  }

  // forEachKey() into a map, for sections whose keys depend on each other.
  FieldMap collect(const Field& map, Keys known) {
    FieldMap fields;
    forEachKey(map, known,
               [&](const std::string& key, const Field& value) { fields.emplace(key, value); });
    return fields;
  }

  static const Field* get(const FieldMap& fields, const char* key) {
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }

  std::optional<std::string> readString(const Field& field) {
    Kind kind = kindOf(field.node);
    if (kind == Kind::kString) {
      return field.node.Scalar();
    }
    std::string message = "expected a string, got " + describe(field.node);
    if (kind == Kind::kNull) {
      message += "; write \"\" for an empty string";
    } else if (kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool) {
      message += "; quote it if you mean the text: " + quote(field.node.Scalar());
    }
    error(field, message);
    return std::nullopt;
  }

  std::optional<std::string> readNonEmptyString(const Field& field) {
    std::optional<std::string> text = readString(field);
    if (text && text->empty()) {
      error(field, "must not be empty");
      return std::nullopt;
    }
    return text;
  }

  // A string that must be one of `choices`.
  std::optional<std::string> readChoice(const Field& field, Keys choices) {
    std::optional<std::string> text = readString(field);
    if (text && !contains(choices, *text)) {
      error(field, "must be one of " + joinKeys(choices) + ", got " + quote(*text));
      return std::nullopt;
    }
    return text;
  }

  std::optional<bool> readBool(const Field& field) {
    if (kindOf(field.node) == Kind::kBool) {
      char first = field.node.Scalar()[0];
      return first == 't' || first == 'T';
    }
    error(field, "expected true or false, got " + describe(field.node));
    return std::nullopt;
  }

  std::optional<uint64_t> readInteger(const Field& field, uint64_t min, uint64_t max) {
    std::string range = std::to_string(min) + " to " + std::to_string(max);
    uint64_t value = 0;
    if (kindOf(field.node) != Kind::kInt || !parseDecimal(field.node.Scalar(), &value) ||
        value < min || value > max) {
      error(field, "expected a whole number from " + range + ", got " + describe(field.node));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::chrono::milliseconds> readDuration(const Field& field, bool allow_zero) {
    return readDurationWith(field, allow_zero, parseDuration);
  }

  // To the microsecond ("200us"), for the settings that need it.
  std::optional<std::chrono::microseconds> readFineDuration(const Field& field) {
    return readDurationWith(field, true, parseFineDuration);
  }

  template <typename Parse>
  auto readDurationWith(const Field& field, bool allow_zero, Parse parse)
      -> decltype(parse(std::string_view(), nullptr)) {
    Kind kind = kindOf(field.node);
    if (kind != Kind::kString && kind != Kind::kInt && kind != Kind::kFloat) {
      error(field, "expected a duration such as \"10s\", got " + describe(field.node));
      return std::nullopt;
    }
    std::string reason;
    auto value = parse(field.node.Scalar(), &reason);
    if (!value) {
      error(field, reason);
    } else if (!allow_zero && value->count() == 0) {
      error(field, "must be longer than 0");
      return std::nullopt;
    }
    return value;
  }

  std::optional<uint64_t> readSize(const Field& field, uint64_t min, uint64_t max) {
    Kind kind = kindOf(field.node);
    if (kind != Kind::kString && kind != Kind::kInt && kind != Kind::kFloat) {
      error(field,
            "expected a size such as \"10GiB\" or a number of bytes, got " + describe(field.node));
      return std::nullopt;
    }
    std::string reason;
    std::optional<uint64_t> value = parseSize(field.node.Scalar(), &reason);
    if (!value) {
      error(field, reason);
    } else if (*value < min || *value > max) {
      error(field, "must be from " + formatSize(min) + " to " + formatSize(max) + ", got " +
                       quote(field.node.Scalar()));
      return std::nullopt;
    }
    return value;
  }

  // The position of byte `offset` of a scalar's value, when the value is
  // written verbatim on one line (plain or quoted without escapes); else the
  // scalar's own position. Lets "a, b, bad" point at "bad".
  Position offsetInScalar(const Field& field, size_t offset) const {
    const YAML::Mark mark = field.node.Mark();
    const std::string& value = field.node.Scalar();
    if (mark.is_null() || mark.pos < 0 || value.find('\n') != std::string::npos) {
      return field.pos;
    }
    auto start = static_cast<size_t>(mark.pos);
    if (start < source_.size() && (source_[start] == '"' || source_[start] == '\'')) {
      ++start;
    }
    if (source_.substr(std::min(start, source_.size()), value.size()) != value) {
      return field.pos;
    }
    Position at = field.pos;
    at.column += static_cast<int>(start - static_cast<size_t>(mark.pos) + offset);
    return at;
  }

  // A list written as a YAML sequence, a comma-separated string, or (for
  // `integers`) a single number. Entries are trimmed of blanks; empty
  // entries are errors. Sequence entries must be strings (or integers).
  std::optional<std::vector<Item>> readList(const Field& field, bool integers) {
    std::vector<Item> items;
    bool ok = true;
    Kind kind = kindOf(field.node);
    if (kind == Kind::kList) {
      size_t index = 0;
      for (const YAML::Node& node : field.node) {
        Position at = kindOf(node) == Kind::kNull ? field.pos : positionOf(node.Mark());
        Field item{node, field.path + "[" + std::to_string(index++) + "]", at, at};
        Kind item_kind = kindOf(node);
        if (integers ? item_kind != Kind::kInt : item_kind != Kind::kString) {
          error(item, std::string(integers ? "expected a port number" : "expected a string") +
                          ", got " + describe(node));
          ok = false;
        } else if (node.Scalar().empty()) {
          error(item, "empty entry");
          ok = false;
        } else {
          items.push_back(Item{node.Scalar(), item});
        }
      }
      return ok ? std::optional(items) : std::nullopt;
    }
    if (integers && kind == Kind::kInt) {
      items.push_back(Item{field.node.Scalar(), field});
      return items;
    }
    if (kind != Kind::kString) {
      error(field, "expected a list or a comma-separated string, got " + describe(field.node));
      return std::nullopt;
    }
    const std::string& text = field.node.Scalar();
    size_t start = 0;
    for (size_t index = 0;; ++index) {
      size_t comma = std::min(text.find(',', start), text.size());
      size_t leading = 0;
      std::string_view piece =
          trimBlanks(std::string_view(text).substr(start, comma - start), &leading);
      Position at = offsetInScalar(field, start + leading);
      Field item{field.node, field.path + "[" + std::to_string(index) + "]", at, at};
      if (piece.empty()) {
        error(item, "empty entry in the comma-separated list " + quote(text));
        ok = false;
      } else {
        items.push_back(Item{std::string(piece), item});
      }
      if (comma == text.size()) {
        break;
      }
      start = comma + 1;
    }
    return ok ? std::optional(items) : std::nullopt;
  }

  // `hosts` / `modules`: a string in NO_PROXY / GOPRIVATE syntax, or a list
  // of strings joined with ','. Only the shape is checked here.
  std::optional<Sourced> readPatternList(const Field& field) {
    Kind kind = kindOf(field.node);
    if (kind == Kind::kString) {
      if (field.node.Scalar().empty()) {
        error(field, "is empty and would match nothing");
        return std::nullopt;
      }
      return Sourced{field.node.Scalar(), sourcePos(field.pos)};
    }
    if (kind != Kind::kList) {
      error(field, "expected a string or a list of strings, got " + describe(field.node));
      return std::nullopt;
    }
    std::optional<std::vector<Item>> items = readList(field, /*integers=*/false);
    if (!items) {
      return std::nullopt;
    }
    if (items->empty()) {
      error(field, "is an empty list and would match nothing");
      return std::nullopt;
    }
    std::string joined;
    for (const Item& item : *items) {
      joined += (joined.empty() ? "" : ",") + item.text;
    }
    return Sourced{joined, sourcePos(field.pos)};
  }

  // --- Sections, in the order load() applies them. ---

  void loadDocument(const YAML::Node& root) {
    config_.file = file_;
    Field document{root, "", positionOf(root.Mark()), positionOf(root.Mark())};
    if (!root.IsMap()) {
      error(document, "the config must be a mapping of settings (listen, env, rules, ...), got " +
                          describe(root));
      return;
    }
    FieldMap top = collect(document, kTopKeys);
    if (const Field* field = get(top, "listen")) {
      loadListen(*field);
    }
    if (const Field* field = get(top, "admin")) {
      loadAdmin(*field);
    }
    if (const Field* field = get(top, "inherit_env")) {
      config_.inherit_env = readBool(*field).value_or(config_.inherit_env);
    }
    loadEnv(get(top, "env"));
    // tls and cache first: rules are checked against them.
    size_t before = errors_.count();
    if (const Field* field = get(top, "tls")) {
      loadTls(*field);
    }
    tls_ok_ = errors_.count() == before;
    before = errors_.count();
    if (const Field* field = get(top, "cache")) {
      loadCache(*field);
    }
    cache_ok_ = errors_.count() == before;
    if (const Field* field = get(top, "resolve")) {
      loadResolve(*field);
    }
    if (const Field* field = get(top, "access")) {
      loadAccess(*field);
    }
    if (const Field* field = get(top, "limits")) {
      loadLimits(*field);
    }
    if (const Field* field = get(top, "log")) {
      loadLog(*field);
    }
    if (const Field* field = get(top, "rules")) {
      loadRules(*field);
    }
  }

  void loadListen(const Field& field) {
    std::optional<std::vector<Item>> items = readList(field, /*integers=*/false);
    if (!items) {
      return;
    }
    if (items->empty()) {
      error(field, "needs at least one address, e.g. \"127.0.0.1:3128\"");
      return;
    }
    std::vector<std::string> addresses;
    for (const Item& item : *items) {
      std::string reason;
      if (!validateListenAddress(item.text, &reason)) {
        error(item.field, "bad address " + quote(item.text) + ": " + reason);
      } else if (!isAnyPort(item.text) &&
                 std::find(addresses.begin(), addresses.end(), item.text) != addresses.end()) {
        error(item.field, "address " + quote(item.text) + " is listed twice");
      } else {
        addresses.push_back(item.text);
      }
    }
    config_.listen = std::move(addresses);
  }

  void loadAdmin(const Field& field) {
    std::optional<std::string> text = readString(field);
    if (!text || text->empty()) {
      return;
    }
    std::string reason;
    if (!validateListenAddress(*text, &reason)) {
      error(field, "bad address " + quote(*text) + ": " + reason);
    } else if (!isAnyPort(*text) && std::find(config_.listen.begin(), config_.listen.end(),
                                              *text) != config_.listen.end()) {
      error(field, "the admin listener cannot share the proxy address " + quote(*text));
    } else {
      config_.admin = *text;
    }
  }

  void loadEnv(const Field* field) {
    std::map<std::string, Sourced> config_env;
    if (field != nullptr) {
      forEachKey(*field, kEnvNames, [&](const std::string& name, const Field& value) {
        std::optional<std::string> text = readString(value);
        if (!text) {
          return;
        }
        bool is_proxy = lower(name) == "https_proxy" || lower(name) == "http_proxy";
        std::string reason;
        if (is_proxy && !text->empty() &&
            !parseProxyUrl(*text, /*scheme_optional=*/true, &reason)) {
          error(value, "not a usable parent proxy: " + reason);
          return;
        }
        config_env[name] = Sourced{*text, sourcePos(value.pos)};
      });
    }
    config_.env_keys = config_env;
    config_.env = resolveEnvironment(config_env, config_.inherit_env, process_env_);
  }

  void loadTls(const Field& field) {
    forEachKey(field, kTlsKeys, [&](const std::string& key, const Field& value) {
      std::optional<std::string> text = readString(value);
      if (!text) {
        return;
      }
      if (key == "ca_dir") {
        config_.tls.ca_dir = *text;
      } else {
        config_.tls.upstream_ca_file = *text;
      }
    });
  }

  void loadCache(const Field& field) {
    forEachKey(field, kCacheKeys, [&](const std::string& key, const Field& value) {
      if (key == "dir") {
        config_.cache.dir = readString(value).value_or(config_.cache.dir);
      } else if (key == "max_size") {
        config_.cache.max_size = readSize(value, 1, std::numeric_limits<uint64_t>::max())
                                     .value_or(config_.cache.max_size);
      } else {
        config_.cache.mutable_ttl =
            readDuration(value, /*allow_zero=*/true).value_or(config_.cache.mutable_ttl);
      }
    });
  }

  void loadResolve(const Field& field) {
    forEachKey(field, kAnyKey, [&](const std::string& name, const Field& value) {
      Field key_field{value.node, value.path, value.key_pos, value.key_pos};
      bool bad = name.empty() || std::any_of(name.begin(), name.end(), [](char c) {
                   return static_cast<unsigned char>(c) <= ' ' || c == 0x7f ||
                          std::string_view("/:@[]").find(c) != std::string_view::npos;
                 });
      if (bad) {
        error(key_field, "expected a host name without port, got " + quote(name));
        return;
      }
      std::optional<std::string> address = readString(value);
      if (!address) {
        return;
      }
      if (!isIpLiteral(*address)) {
        error(value, "expected an IP address, got " + quote(*address));
        return;
      }
      if (!config_.resolve.emplace(lower(name), *address).second) {
        error(key_field, "the host name " + quote(name) + " is listed twice");
      }
    });
  }

  // allow_clients / admin_allow_clients: CIDRs or bare IPs, at least one.
  std::optional<std::vector<std::string>> readClientList(const Field& field) {
    std::optional<std::vector<Item>> items = readList(field, /*integers=*/false);
    if (!items) {
      return std::nullopt;
    }
    if (items->empty()) {
      error(field, "is empty, so no client could connect; list at least one address or CIDR");
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (const Item& item : *items) {
      std::string reason;
      if (!validateCidr(item.text, &reason)) {
        error(item.field, "bad address or CIDR " + quote(item.text) + ": " + reason);
        ok = false;
      }
      out.push_back(item.text);
    }
    return ok ? std::optional(out) : std::nullopt;
  }

  void loadAccess(const Field& field) {
    AccessConfig& access = config_.access;
    forEachKey(field, kAccessKeys, [&](const std::string& key, const Field& value) {
      if (key == "allow_clients") {
        access.allow_clients = readClientList(value).value_or(access.allow_clients);
      } else if (key == "admin_allow_clients") {
        access.admin_allow_clients = readClientList(value).value_or(access.admin_allow_clients);
      } else if (key == "connect_ports") {
        loadConnectPorts(value);
      } else if (key == "deny_private_destinations") {
        access.deny_private_destinations =
            readBool(value).value_or(access.deny_private_destinations);
      } else {
        access.users_file = readString(value).value_or(access.users_file);
      }
    });
  }

  void loadConnectPorts(const Field& field) {
    std::optional<std::vector<Item>> items = readList(field, /*integers=*/true);
    if (!items) {
      return;
    }
    std::vector<uint16_t> ports;
    for (const Item& item : *items) {
      uint64_t port = 0;
      if (!parseDecimal(item.text, &port) || port < 1 || port > 65535) {
        error(item.field, "expected a port number from 1 to 65535, got " + quote(item.text));
        continue;
      }
      ports.push_back(static_cast<uint16_t>(port));
    }
    config_.access.connect_ports = std::move(ports);
  }

  void loadLimits(const Field& field) {
    LimitsConfig& limits = config_.limits;
    constexpr uint64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
    auto count = [&](const Field& value, uint32_t fallback) {
      return static_cast<uint32_t>(readInteger(value, 1, kMaxU32).value_or(fallback));
    };
    auto timeout = [&](const Field& value, std::chrono::milliseconds fallback, bool zero_ok) {
      return readDuration(value, zero_ok).value_or(fallback);
    };
    forEachKey(field, kLimitsKeys, [&](const std::string& key, const Field& value) {
      if (key == "max_connections") {
        limits.max_connections = count(value, limits.max_connections);
      } else if (key == "max_connections_per_client") {
        limits.max_connections_per_client = count(value, limits.max_connections_per_client);
      } else if (key == "max_header_bytes") {
        // Below 1 KiB not even a modest request head fits.
        limits.max_header_bytes =
            static_cast<uint32_t>(readSize(value, 1024, kMaxU32).value_or(limits.max_header_bytes));
      } else if (key == "header_timeout") {
        limits.header_timeout = timeout(value, limits.header_timeout, false);
      } else if (key == "idle_timeout") {
        limits.idle_timeout = timeout(value, limits.idle_timeout, false);
      } else if (key == "connect_timeout") {
        limits.connect_timeout = timeout(value, limits.connect_timeout, false);
      } else if (key == "response_timeout") {
        limits.response_timeout = timeout(value, limits.response_timeout, false);
      } else if (key == "splice") {
        limits.splice = readBool(value).value_or(limits.splice);
      } else if (key == "busy_poll") {
        // Each burst of traffic keeps a core busy this long afterwards: a
        // window of seconds or minutes can only be a slip of the unit.
        constexpr std::chrono::microseconds kMaxBusyPoll{1'000'000};
        std::optional<std::chrono::microseconds> window = readFineDuration(value);
        if (window && *window > kMaxBusyPoll) {
          error(value, "must be at most 1s (the loop spins that long after traffic), got " +
                           quote(value.node.Scalar()));
        } else if (window) {
          limits.busy_poll = *window;
        }
      } else {
        // 0 is meaningful here: close everything at once on shutdown.
        limits.drain_timeout = timeout(value, limits.drain_timeout, true);
      }
    });
  }

  void loadLog(const Field& field) {
    LogConfig& log = config_.log;
    forEachKey(field, kLogKeys, [&](const std::string& key, const Field& value) {
      if (key == "level") {
        log.level = readChoice(value, kLogLevels).value_or(log.level);
      } else if (key == "format") {
        log.format = readChoice(value, kLogFormats).value_or(log.format);
      } else {
        log.decisions = readNonEmptyString(value).value_or(log.decisions);
      }
    });
  }

  void loadRules(const Field& field) {
    Kind kind = kindOf(field.node);
    if (kind == Kind::kNull) {
      return;
    }
    if (kind != Kind::kList) {
      error(field, "expected a list of rules (each \"- name: ...\"), got " + describe(field.node));
      return;
    }
    size_t index = 0;
    for (const YAML::Node& node : field.node) {
      Position at = kindOf(node) == Kind::kNull ? field.pos : positionOf(node.Mark());
      loadRule(Field{node, "rules[" + std::to_string(index++) + "]", at, at});
    }
  }

  void loadRule(const Field& field) {
    if (!field.node.IsMap()) {
      error(field,
            "expected a rule (a mapping with name, match and action), got " + describe(field.node));
      return;
    }
    size_t errors_before = errors_.count();
    RuleConfig rule;
    rule.pos = sourcePos(field.pos);
    FieldMap fields = collect(field, kRuleKeys);

    loadRuleName(field, get(fields, "name"), &rule);
    loadMatch(field, get(fields, "match"), &rule);
    const Field* action = get(fields, "action");
    std::optional<std::string> action_name;
    if (action == nullptr) {
      error(field, "missing \"action\" (one of " + joinKeys(kActions) + ")");
    } else {
      action_name = readChoice(*action, kActions);
    }
    if (action_name) {
      static constexpr std::array<Action, 4> kActionValues{Action::kDirect, Action::kUpstream,
                                                           Action::kMirror, Action::kDeny};
      size_t i = static_cast<size_t>(std::find(kActions.begin(), kActions.end(), *action_name) -
                                     kActions.begin());
      rule.action = kActionValues[i];
    }
    if (const Field* flag = get(fields, "intercept")) {
      rule.intercept = readBool(*flag).value_or(false);
    }
    if (const Field* flag = get(fields, "cache")) {
      rule.cache = readBool(*flag).value_or(false);
    }
    if (const Field* flag = get(fields, "allow_private")) {
      rule.allow_private = readBool(*flag).value_or(false);
    }
    const Field* mirrors = get(fields, "mirrors");
    if (mirrors != nullptr) {
      if (std::optional<std::string> text = readNonEmptyString(*mirrors)) {
        rule.mirrors = Sourced{*text, sourcePos(mirrors->pos)};
      }
    }
    const Field* upstream = get(fields, "upstream");
    if (upstream != nullptr) {
      if (std::optional<std::string> text = readNonEmptyString(*upstream)) {
        std::string reason;
        if (parseProxyUrl(*text, /*scheme_optional=*/false, &reason)) {
          rule.upstream = Sourced{*text, sourcePos(upstream->pos)};
        } else {
          error(*upstream, "bad parent proxy URL: " + reason);
        }
      }
    }
    if (action_name) {
      checkRuleConsistency(fields, *action, rule);
    }
    if (errors_.count() == errors_before) {
      config_.rules.push_back(std::move(rule));
    }
  }

  void loadRuleName(const Field& rule_field, const Field* field, RuleConfig* rule) {
    if (field == nullptr) {
      error(rule_field, "missing \"name\"");
      return;
    }
    std::optional<std::string> name = readNonEmptyString(*field);
    if (!name) {
      return;
    }
    // Names travel in Proxy-Status headers and log lines: keep them simple.
    bool simple = std::all_of(name->begin(), name->end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || c == '.';
    });
    if (!simple) {
      error(*field,
            "rule name " + quote(*name) + " may only use letters, digits, '-', '_' and '.'");
      return;
    }
    if (*name == "default") {
      error(*field, "the rule name \"default\" is reserved for the implicit last rule");
      return;
    }
    auto [first, inserted] = rule_names_.emplace(*name, field->pos);
    if (!inserted) {
      error(*field, "duplicate rule name " + quote(*name) + " (first at line " +
                        std::to_string(first->second.line) + ")");
      return;
    }
    rule->name = *name;
  }

  void loadMatch(const Field& rule_field, const Field* field, RuleConfig* rule) {
    if (field == nullptr) {
      error(rule_field, "missing \"match\" (with \"hosts\" and/or \"modules\")");
      return;
    }
    size_t before = errors_.count();
    bool any = false;
    forEachKey(*field, kMatchKeys, [&](const std::string& key, const Field& value) {
      any = true;
      std::optional<Sourced> patterns = readPatternList(value);
      (key == "hosts" ? rule->hosts : rule->modules) = patterns;
    });
    if (!any && errors_.count() == before) {
      error(*field, "needs \"hosts\" and/or \"modules\"");
    }
  }

  // The cross-field rules of one rule; `action` is its (valid) action field.
  void checkRuleConsistency(const FieldMap& fields, const Field& action, const RuleConfig& rule) {
    const char* name = actionName(rule.action);
    const Field* mirrors = get(fields, "mirrors");
    const Field* upstream = get(fields, "upstream");
    const Field* intercept = get(fields, "intercept");
    const Field* cache = get(fields, "cache");
    if (rule.action == Action::kMirror && mirrors == nullptr) {
      error(action, "action mirror needs \"mirrors\" (a GOPROXY-style list of URLs)");
    }
    if (rule.action == Action::kUpstream && upstream == nullptr) {
      error(action, "action upstream needs \"upstream\" (the parent proxy URL)");
    }
    if (mirrors != nullptr && rule.action != Action::kMirror) {
      error(*mirrors, std::string("\"mirrors\" is only allowed with action mirror, not ") + name);
    }
    if (upstream != nullptr && rule.action != Action::kUpstream) {
      error(*upstream,
            std::string("\"upstream\" is only allowed with action upstream, not ") + name);
    }
    if (rule.intercept && tls_ok_ && config_.tls.ca_dir.empty()) {
      error(*intercept, "intercept: true needs tls.ca_dir (the CA that signs intercepted hosts)");
    }
    if (rule.cache && rule.action != Action::kMirror && rule.action != Action::kDirect) {
      error(*cache,
            std::string("cache: true is only allowed with action mirror or direct, not ") + name);
    } else if (rule.cache && cache_ok_ && config_.cache.dir.empty()) {
      error(*cache, "cache: true needs cache.dir");
    }
    // A CONNECT tunnel is opaque: without intercept there is no request to
    // send to a mirror (DESIGN.md, special cases).
    if (rule.action == Action::kMirror && rule.hosts && !rule.intercept) {
      error(action,
            "a mirror rule that matches hosts sees CONNECT tunnels and needs "
            "intercept: true");
    }
  }

  std::string_view source_;
  std::string file_;
  const EnvMap& process_env_;
  Errors errors_;
  Config config_;
  std::map<std::string, Position> rule_names_;
  bool tls_ok_ = true;    // tls had no errors: its ca_dir can be trusted
  bool cache_ok_ = true;  // likewise for cache.dir
};

int percentValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = static_cast<char>(c | 0x20);
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

bool percentDecode(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out->push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) {
      return false;
    }
    int high = percentValue(text[i + 1]);
    int low = percentValue(text[i + 2]);
    if (high < 0 || low < 0) {
      return false;
    }
    out->push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

// Letters, digits, '-', '.', '_', and any non-ASCII byte: an internationalised
// name is written in UTF-8 and converted (IDNA) when it is resolved.
bool isHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}

// Splits "host:port" / "[v6]:port"; *port_text empty when there is no port.
// Brackets are removed from *host.
bool splitHostPort(std::string_view text, std::string* host, std::string* port_text, bool* had_port,
                   std::string* error) {
  *had_port = false;
  port_text->clear();
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      setError(error, "missing ']' after an IPv6 address");
      return false;
    }
    *host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        setError(error, "unexpected text after ']'");
        return false;
      }
      *had_port = true;
      *port_text = std::string(rest.substr(1));
    }
    if (!isIpLiteral(*host) || host->find(':') == std::string::npos) {
      setError(error, quote(*host) + " in brackets is not an IPv6 address");
      return false;
    }
    return true;
  }
  size_t colon = text.rfind(':');
  if (colon != std::string_view::npos && text.find(':') != colon) {
    setError(error, "an IPv6 address must be in brackets, e.g. [::1]:3128");
    return false;
  }
  if (colon == std::string_view::npos) {
    *host = std::string(text);
  } else {
    *host = std::string(text.substr(0, colon));
    *port_text = std::string(text.substr(colon + 1));
    *had_port = true;
  }
  return true;
}

}  // namespace

bool isIpLiteral(std::string_view text) {
  std::string copy(text);
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, copy.c_str(), buf) == 1 || inet_pton(AF_INET6, copy.c_str(), buf) == 1;
}

bool validateListenAddress(std::string_view text, std::string* error) {
  std::string host;
  std::string port_text;
  bool had_port = false;
  if (!splitHostPort(text, &host, &port_text, &had_port, error)) {
    return false;
  }
  uint64_t port = 0;
  if (!had_port) {
    setError(error, "expected host:port, e.g. 127.0.0.1:3128");
    return false;
  }
  if (!parseDecimal(port_text, &port) || port > 65535) {
    setError(error, "bad port " + quote(port_text) + " (0 to 65535)");
    return false;
  }
  if (!host.empty() && host != "localhost" && !isIpLiteral(host)) {
    setError(error, quote(host) + " is not an IP address (use an IP address or localhost)");
    return false;
  }
  return true;
}

bool validateCidr(std::string_view text, std::string* error) {
  size_t slash = text.find('/');
  std::string address(text.substr(0, slash));
  unsigned char buf[sizeof(in6_addr)];
  int bits = 0;
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    bits = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    bits = 128;
  } else {
    setError(error, quote(address) + " is not an IP address");
    return false;
  }
  if (slash == std::string_view::npos) {
    return true;
  }
  std::string_view prefix = text.substr(slash + 1);
  uint64_t length = 0;
  if (prefix.size() > 3 || !parseDecimal(prefix, &length) || length > static_cast<uint64_t>(bits)) {
    setError(error, "prefix length " + quote(prefix) + " must be a number from 0 to " +
                        std::to_string(bits));
    return false;
  }
  return true;
}

std::optional<ProxyUrl> parseProxyUrl(std::string_view text, bool scheme_optional,
                                      std::string* error) {
  std::string with_scheme;
  size_t separator = text.find("://");
  if (separator == std::string_view::npos) {
    if (!scheme_optional) {
      setError(error, "missing scheme; write http://host:port or https://host:port");
      return std::nullopt;
    }
    with_scheme = "http://" + std::string(text);
    text = with_scheme;
    separator = 4;
  }
  ProxyUrl url;
  url.scheme = lower(text.substr(0, separator));
  if (url.scheme != "http" && url.scheme != "https") {
    setError(error, "unsupported scheme " + quote(url.scheme) + " (use http:// or https://)");
    return std::nullopt;
  }
  std::string_view rest = text.substr(separator + 3);
  size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail = rest.substr(authority_end);
  if (!tail.empty() && tail != "/") {
    setError(error, "a parent proxy URL has no path, query or fragment, got " + quote(tail));
    return std::nullopt;
  }
  // Go's url.Parse splits user info at the last '@'.
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    std::string_view user = userinfo.substr(0, colon);
    std::string_view password =
        colon == std::string_view::npos ? std::string_view() : userinfo.substr(colon + 1);
    if (!percentDecode(user, &url.user) || !percentDecode(password, &url.password)) {
      setError(error, "bad %-escape in the user name or password");
      return std::nullopt;
    }
    if (url.user.empty()) {
      setError(error, "empty user name before '@'");
      return std::nullopt;
    }
    url.has_credentials = true;
  }
  std::string port_text;
  bool had_port = false;
  if (!splitHostPort(authority, &url.host, &port_text, &had_port, error)) {
    return std::nullopt;
  }
  if (url.host.empty()) {
    setError(error, "missing host name");
    return std::nullopt;
  }
  if (authority.front() != '[' && !std::all_of(url.host.begin(), url.host.end(), isHostNameChar)) {
    setError(error, "bad host name " + quote(url.host));
    return std::nullopt;
  }
  uint64_t port = url.scheme == "https" ? 443 : 80;
  if (had_port && (!parseDecimal(port_text, &port) || port < 1 || port > 65535)) {
    setError(error, "bad port " + quote(port_text) + " (1 to 65535)");
    return std::nullopt;
  }
  url.port = static_cast<uint16_t>(port);
  return url;
}

LoadResult loadConfigString(const std::string& yaml, const std::string& file_name,
                            const EnvMap& process_env) {
  return Loader(yaml, file_name, process_env).load();
}

LoadResult loadConfigFile(const std::string& path, const EnvMap& process_env) {
  auto fail = [&path](const std::string& what) {
    LoadResult result;
    result.errors.push_back(path + ": " + what);
    return result;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(std::string("cannot open: ") + std::strerror(errno));
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      return fail(std::string("cannot open: ") + std::strerror(saved));
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      ::close(fd);
      return fail("cannot open: larger than " + formatSize(kMaxConfigBytes) +
                  "; is this the right file?");
    }
  }
  ::close(fd);
  return loadConfigString(text, path, process_env);
}

Config defaultConfig(const EnvMap& process_env) {
  Config config;
  config.env = resolveEnvironment({}, /*inherit_env=*/true, process_env);
  return config;
}

std::string summarizeConfig(const Config& config) {
  auto plural = [](size_t n, const char* noun) {
    return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
  };
  const EnvConfig& env = config.env;
  const std::array<std::pair<const char*, const Sourced*>, 8> fields{{
      {"GOPROXY", &env.goproxy},
      {"GOPRIVATE", &env.goprivate},
      {"GONOPROXY", &env.gonoproxy},
      {"GONOSUMDB", &env.gonosumdb},
      {"GOSUMDB", &env.gosumdb},
      {"NO_PROXY", &env.no_proxy},
      {"HTTPS_PROXY", &env.https_proxy},
      {"HTTP_PROXY", &env.http_proxy},
  }};
  auto samePos = [](const SourcePos& a, const SourcePos& b) {
    return a.file == b.file && a.line == b.line && a.column == b.column && a.env == b.env;
  };
  std::vector<std::string> from_config;
  std::vector<std::string> from_process;
  auto addOnce = [](std::vector<std::string>* names, const std::string& name) {
    if (std::find(names->begin(), names->end(), name) == names->end()) {
      names->push_back(name);
    }
  };
  for (const auto& [name, value] : fields) {
    const SourcePos& pos = value->pos;
    bool from_goprivate = value != &env.goprivate && samePos(pos, env.goprivate.pos) &&
                          (value == &env.gonoproxy || value == &env.gonosumdb);
    if (from_goprivate) {
      continue;  // GONOPROXY / GONOSUMDB defaulted to GOPRIVATE: say it once.
    }
    if (!pos.file.empty()) {
      // The config may have used the lowercase spelling: name what it wrote.
      std::string written = name;
      for (const auto& [key, sourced] : config.env_keys) {
        if (samePos(sourced.pos, pos)) {
          written = key;
        }
      }
      addOnce(&from_config, written);
    } else if (!pos.env.empty()) {
      addOnce(&from_process, pos.env);
    }
  }
  auto list = [](const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& name : names) {
      out += (out.empty() ? "" : ", ") + name;
    }
    return "(" + out + ")";
  };
  std::string out = "ok: " + plural(config.listen.size(), "listener") + ", " +
                    plural(config.rules.size(), "rule");
  if (!from_config.empty() && !from_process.empty()) {
    out += ", env from config " + list(from_config) + " and process " + list(from_process);
  } else if (!from_config.empty()) {
    out += ", env from config " + list(from_config);
  } else if (!from_process.empty()) {
    out += ", env from process " + list(from_process);
  } else {
    out += ", env: built-in defaults only";
  }
  return out;
}

}  // namespace switchyard::rules
