#include "model/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <limits>

namespace fleetwatch::model {
namespace {

TEST(SerializeJson, WritesDoublesTheShortWay) {
  boost::json::value v = {{"cost", 0.0}, {"price", 1.5}, {"big", 1e16}, {"third", 1.0 / 3}};
  EXPECT_EQ(SerializeJson(v), R"({"cost":0.0,"price":1.5,"big":1e+16,"third":0.3333333333333333})");
}

TEST(SerializeJson, KeepsIntegersStringsAndStructure) {
  boost::json::value v = {{"n", -3},
                          {"u", std::numeric_limits<uint64_t>::max()},
                          {"s", "a\"b\\c\n<script>"},
                          {"list", boost::json::array{true, nullptr, "x"}},
                          {"empty", boost::json::object()}};
  std::string text = SerializeJson(v);
  EXPECT_EQ(text,
            R"({"n":-3,"u":18446744073709551615,"s":"a\"b\\c\n<script>","list":[true,null,"x"],)"
            R"("empty":{}})");
  EXPECT_EQ(boost::json::parse(text), v);
}

TEST(SerializeJson, NonFiniteBecomesNull) {
  boost::json::value v = boost::json::array{std::numeric_limits<double>::infinity(),
                                            std::numeric_limits<double>::quiet_NaN()};
  EXPECT_EQ(SerializeJson(v), "[null,null]");
}

}  // namespace
}  // namespace fleetwatch::model
