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

TEST(ParseStrictJson, ReadsEveryDoubleAsTheSameDoubleItsShortestTextNames) {
  // Boost.JSON's own conversion reads this one an ulp low (2.553330000003339).
  Result<boost::json::value> price = ParseStrictJson("2.5533300000033394");
  ASSERT_TRUE(price.ok()) << price.status().message();
  EXPECT_EQ(price->as_double(), 2.5533300000033394);
  for (double d : {0.1, 1.0 / 3, 2.5533300000033394, 6.02214076e23, 5e-324, -1.7976931348623157e308,
                   123456.78901234567}) {
    Result<boost::json::value> again = ParseStrictJson(SerializeJson(boost::json::value(d)));
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(again->as_double(), d) << SerializeJson(boost::json::value(d));
  }
  Result<boost::json::value> list = ParseStrictJson("[1, -2, 2.5e3, 18446744073709551615]");
  ASSERT_TRUE(list.ok()) << list.status().message();
  EXPECT_EQ(list->as_array()[0].as_int64(), 1);
  EXPECT_EQ(list->as_array()[1].as_int64(), -2);
  EXPECT_EQ(list->as_array()[2].as_double(), 2500.0);
  EXPECT_EQ(list->as_array()[3].as_uint64(), std::numeric_limits<uint64_t>::max());
}

}  // namespace
}  // namespace fleetwatch::model
