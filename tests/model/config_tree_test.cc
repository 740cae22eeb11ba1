#include "model/config_tree.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace fleetwatch::model::config {
namespace {

using ::testing::HasSubstr;

boost::json::object Tree(std::string_view text, ConfigFormat format = ConfigFormat::kYaml) {
  Result<boost::json::object> tree = ParseConfigTree(text, format);
  EXPECT_TRUE(tree.ok()) << tree.status().ToString();
  return tree.ok() ? *tree : boost::json::object();
}

std::string ErrorOf(std::string_view text, ConfigFormat format = ConfigFormat::kYaml) {
  Result<boost::json::object> tree = ParseConfigTree(text, format);
  EXPECT_FALSE(tree.ok()) << text;
  if (tree.ok()) return "";
  Status status = tree.status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  for (char c : status.message()) {
    EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << "unprintable byte in: " << status.message();
  }
  return status.message();
}

TEST(ConfigTreeYaml, TypesPlainScalarsByTheCoreSchema) {
  boost::json::object t = Tree(
      "i: 42\nneg: -7\nhex: 0x1F\noct: 0o17\nf: 1.5\nexp: 1e3\nt: true\nT: True\nfl: FALSE\n"
      "n: null\ntilde: ~\nempty:\nyes_: yes\noff_: off\nver: 1.2.3\ntime: 12:30\n");
  EXPECT_EQ(t.at("i"), boost::json::value(42));
  EXPECT_EQ(t.at("neg"), boost::json::value(-7));
  EXPECT_EQ(t.at("hex"), boost::json::value(31));
  EXPECT_EQ(t.at("oct"), boost::json::value(15));
  EXPECT_EQ(t.at("f"), boost::json::value(1.5));
  EXPECT_EQ(t.at("exp"), boost::json::value(1000.0));
  EXPECT_EQ(t.at("t"), boost::json::value(true));
  EXPECT_EQ(t.at("T"), boost::json::value(true));
  EXPECT_EQ(t.at("fl"), boost::json::value(false));
  EXPECT_TRUE(t.at("n").is_null());
  EXPECT_TRUE(t.at("tilde").is_null());
  EXPECT_TRUE(t.at("empty").is_null());
  // YAML 1.1 booleans and sexagesimals are plain strings in YAML 1.2.
  EXPECT_EQ(t.at("yes_"), boost::json::value("yes"));
  EXPECT_EQ(t.at("off_"), boost::json::value("off"));
  EXPECT_EQ(t.at("ver"), boost::json::value("1.2.3"));
  EXPECT_EQ(t.at("time"), boost::json::value("12:30"));
}

TEST(ConfigTreeYaml, QuotedAndStrTaggedScalarsStayStrings) {
  boost::json::object t =
      Tree("a: \"42\"\nb: 'true'\nc: \"null\"\nd: !!str 7\ne: \"\"\nf: |\n  line\n");
  EXPECT_EQ(t.at("a"), boost::json::value("42"));
  EXPECT_EQ(t.at("b"), boost::json::value("true"));
  EXPECT_EQ(t.at("c"), boost::json::value("null"));
  EXPECT_EQ(t.at("d"), boost::json::value("7"));
  EXPECT_EQ(t.at("e"), boost::json::value(""));
  EXPECT_EQ(t.at("f"), boost::json::value("line\n"));
}

TEST(ConfigTreeYaml, IntegersBeyondInt64AreNotWrapped) {
  boost::json::object t = Tree("big: 99999999999999999999\nu: 18446744073709551615\n");
  EXPECT_TRUE(t.at("big").is_double());
  EXPECT_TRUE(t.at("u").is_uint64());
  EXPECT_THAT(ErrorOf("x: 0x1FFFFFFFFFFFFFFFFF\n"), HasSubstr("x: integer is out of range"));
}

TEST(ConfigTreeYaml, RefusesOtherTags) {
  EXPECT_THAT(ErrorOf("a: !custom 1\n"), HasSubstr("a: YAML tags are not supported"));
  EXPECT_THAT(ErrorOf("a: !!python/object 1\n"), HasSubstr("YAML tags are not supported"));
}

TEST(ConfigTreeYaml, RefusesDuplicateAndComplexKeys) {
  EXPECT_EQ(ErrorOf("a: 1\nb: 2\na: 3\n"), "duplicate key 'a'");
  EXPECT_EQ(ErrorOf("r:\n  x: 1\n  x: 2\n"), "r: duplicate key 'x'");
  EXPECT_THAT(ErrorOf("? [a, b]\n: 1\n"), HasSubstr("mapping keys must be plain strings"));
}

TEST(ConfigTreeYaml, ExpandsAliases) {
  boost::json::object t = Tree("a: &x [1, 2]\nb: *x\n");
  EXPECT_EQ(t.at("b"), t.at("a"));
}

TEST(ConfigTreeYaml, RefusesBillionLaughsBeforeExpandingIt) {
  // 9^9 (387 million) nodes once expanded; the node cap stops it after 100,000.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n";
  std::string previous = "a";
  for (char name = 'b'; name <= 'i'; ++name) {
    bomb += std::string(1, name) + ": &" + name + " [";
    for (int k = 0; k < 9; ++k) bomb += (k ? ", *" : "*") + previous;
    bomb += "]\n";
    previous = std::string(1, name);
  }
  EXPECT_THAT(ErrorOf(bomb), HasSubstr("too many values"));
}

TEST(ConfigTreeYaml, RefusesLongStringAliasBomb) {
  std::string bomb = "a: &a \"" + std::string(1 << 19, 'x') + "\"\nb: [";
  for (int k = 0; k < 40; ++k) bomb += "*a, ";
  bomb += "*a]\n";
  EXPECT_THAT(ErrorOf(bomb), HasSubstr("too large (over 1 MiB as JSON, aliases expanded)"));
}

TEST(ConfigTreeYaml, StopsAnAliasBombOfEscapedTextAtOneMebibyte) {
  // 32 KB of YAML that would expand to 32 MB of JSON (quotes double when escaped):
  // the converter counts the JSON bytes as it builds the tree and gives up at 1 MiB.
  std::string bomb = "a: &a '" + std::string(1600, '"') + "'\nb: [";
  for (int k = 0; k < 10'000; ++k) bomb += k ? ",*a" : "*a";
  bomb += "]\n";
  ASSERT_LT(bomb.size(), 32'000u);
  EXPECT_EQ(ErrorOf(bomb), "configuration is too large (over 1 MiB as JSON, aliases expanded)");
}

TEST(ConfigTreeYaml, KeysCountTowardsTheExpandedSize) {
  std::string key(1000, 'k');
  std::string bomb = "a: &a {" + key + "0: 1, " + key + "1: 2}\nb: [";
  for (int k = 0; k < 1000; ++k) bomb += k ? ",*a" : "*a";
  bomb += "]\n";
  EXPECT_THAT(ErrorOf(bomb), HasSubstr("over 1 MiB as JSON"));
}

TEST(ConfigTreeYaml, AcceptsATreeJustUnderTheCap) {
  std::string text = "a: '" + std::string(kMaxConfigurationBytes - 100, 'x') + "'\n";
  EXPECT_EQ(Tree(text).at("a").as_string().size(), kMaxConfigurationBytes - 100);
}

TEST(CheckNormalizedSize, RefusesOnlyOverOneMebibyte) {
  EXPECT_TRUE(CheckNormalizedSize(kMaxConfigurationBytes).ok());
  Status status = CheckNormalizedSize(kMaxConfigurationBytes + 1);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "configuration is too large (over 1 MiB as normalized JSON)");
}

TEST(ConfigTreeYaml, RefusesSelfReferencingAlias) {
  EXPECT_THAT(ErrorOf("a: &a [*a]\n"), HasSubstr("nested too deeply"));
}

TEST(ConfigTreeYaml, RefusesDeepNestingWithoutOverflowingTheStack) {
  std::string flow(10'000, '[');
  EXPECT_THAT(ErrorOf("a: " + flow + std::string(10'000, ']')), HasSubstr("nested too deeply"));
  EXPECT_THAT(ErrorOf(flow), HasSubstr("nested too deeply"));
  std::string block;
  for (int depth = 0; depth < 100; ++depth) block += std::string(depth, ' ') + "-\n";
  EXPECT_THAT(ErrorOf("a:\n" + block), HasSubstr("nested too deeply"));
}

TEST(ConfigTreeYaml, ReportsWhereMalformedInputBreaks) {
  EXPECT_THAT(ErrorOf("a: [1, 2\nb: 3\n"), HasSubstr("malformed YAML at line "));
  EXPECT_THAT(ErrorOf("a: b\n  c: d\n"), HasSubstr("malformed YAML at line 2, column"));
  EXPECT_THAT(ErrorOf("a: *missing\n"), HasSubstr("malformed YAML"));
}

TEST(ConfigTreeYaml, RefusesEmptyMultipleAndNonMappingDocuments) {
  EXPECT_EQ(ErrorOf(""), "empty configuration");
  EXPECT_EQ(ErrorOf("# only a comment\n\n"), "empty configuration");
  EXPECT_EQ(ErrorOf("~\n"), "empty configuration");
  EXPECT_THAT(ErrorOf("a: 1\n---\nb: 2\n"), HasSubstr("single YAML document"));
  EXPECT_THAT(ErrorOf("- a\n- b\n"), HasSubstr("must be a mapping (got a list)"));
  EXPECT_THAT(ErrorOf("just text\n"), HasSubstr("must be a mapping (got a string)"));
}

// yaml-cpp's LoadAll never returns on a stream it cannot advance in: it piles up empty documents
// until memory runs out. These inputs (the second as fuzz/run_config found it) are refused.
TEST(ConfigTreeYaml, RefusesAStreamTheParserCannotAdvanceIn) {
  EXPECT_EQ(ErrorOf(","), "malformed YAML at line 1, column 1: unexpected token");
  EXPECT_EQ(ErrorOf(" ,]\n"), "malformed YAML at line 1, column 2: unexpected token");
  EXPECT_THAT(ErrorOf(std::string(",\0a \xc9 b]\n: 0\n", 13)),
              HasSubstr("malformed YAML at line 1"));
  EXPECT_THAT(ErrorOf("a: 1\n,\n"), HasSubstr("malformed YAML at line 2"));
}

TEST(ConfigTreeYaml, RefusesInvalidUtf8) {
  EXPECT_THAT(ErrorOf("a: \"\xff\xfe\"\n"), HasSubstr("a: is not valid UTF-8"));
  EXPECT_THAT(ErrorOf("a: \"\xed\xa0\x80\"\n"), HasSubstr("not valid UTF-8"));  // a surrogate
}

TEST(ConfigTreeJson, ParsesObjectsInOrder) {
  boost::json::object t =
      Tree(R"({"z": 1, "a": [true, null, "s", 1.5], "m": {"k": -2}})", ConfigFormat::kJson);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.begin()->key(), "z");
  EXPECT_EQ(t.at("a"), boost::json::parse(R"([true, null, "s", 1.5])"));
  EXPECT_EQ(t.at("m").at("k"), boost::json::value(-2));
}

TEST(ConfigTreeJson, RefusesDuplicateKeys) {
  EXPECT_EQ(ErrorOf(R"({"a": 1, "a": 2})", ConfigFormat::kJson),
            "malformed JSON: duplicate key 'a'");
  EXPECT_EQ(ErrorOf(R"({"r": {"x": [], "x": {}}})", ConfigFormat::kJson),
            "malformed JSON: duplicate key 'x'");
}

TEST(ConfigTreeJson, ReportsLineAndColumnOfMalformedInput) {
  std::string message = ErrorOf("{\n  \"a\": 1,\n  \"b\": ]\n}", ConfigFormat::kJson);
  EXPECT_THAT(message, HasSubstr("malformed JSON: "));
  EXPECT_THAT(message, HasSubstr("at line 3, column 8"));
  EXPECT_THAT(ErrorOf("{\"a\": 1} trailing", ConfigFormat::kJson), HasSubstr("malformed JSON"));
  EXPECT_THAT(ErrorOf("{\"a\": \"\x01\"}", ConfigFormat::kJson), HasSubstr("malformed JSON"));
  EXPECT_THAT(ErrorOf("{\"a\": \"\xff\"}", ConfigFormat::kJson), HasSubstr("malformed JSON"));
  EXPECT_THAT(ErrorOf("{\"a\": 1 // comment\n}", ConfigFormat::kJson), HasSubstr("malformed JSON"));
}

TEST(ConfigTreeJson, RefusesDeepNestingWithoutOverflowingTheStack) {
  std::string deep = std::string(10'000, '[') + std::string(10'000, ']');
  EXPECT_THAT(ErrorOf(deep, ConfigFormat::kJson), HasSubstr("nested too deeply"));
  std::string objects;
  for (int i = 0; i < 10'000; ++i) objects += "{\"a\":";
  EXPECT_THAT(ErrorOf(objects, ConfigFormat::kJson), HasSubstr("nested too deeply"));
}

TEST(ConfigTreeJson, RefusesEmptyAndNonObjectDocuments) {
  EXPECT_EQ(ErrorOf("", ConfigFormat::kJson), "empty configuration");
  EXPECT_EQ(ErrorOf(" \n\t", ConfigFormat::kJson), "empty configuration");
  EXPECT_EQ(ErrorOf("null", ConfigFormat::kJson), "empty configuration");
  EXPECT_THAT(ErrorOf("[1]", ConfigFormat::kJson), HasSubstr("must be a mapping (got a list)"));
  EXPECT_THAT(ErrorOf("3", ConfigFormat::kJson), HasSubstr("must be a mapping"));
}

TEST(ConfigTreeJson, RefusesTooManyValues) {
  std::string many = "{\"a\": [";
  for (int i = 0; i < 100'001; ++i) many += i ? ",0" : "0";
  many += "]}";
  EXPECT_THAT(ErrorOf(many, ConfigFormat::kJson), HasSubstr("too many values"));
}

TEST(ConfigTree, RefusesOversizedInput) {
  std::string huge = "a: \"" + std::string(kMaxInputBytes, 'x') + "\"\n";
  EXPECT_THAT(ErrorOf(huge), HasSubstr("too large"));
  EXPECT_THAT(ErrorOf(huge, ConfigFormat::kJson), HasSubstr("too large"));
}

}  // namespace
}  // namespace fleetwatch::model::config
