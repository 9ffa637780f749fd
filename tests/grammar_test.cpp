// The grammar engine (runtime/grammar.h): GBNF parsing and its error
// messages, the byte-level matcher against texts whose membership is
// known, UTF-8 classes against a plain code-point check written here.
#include <gtest/gtest.h>

#include <random>

#include "runtime/grammar.h"
#include "util/error.h"

namespace flatline {
namespace {

bool matches(const std::string& gbnf, const std::string& text) {
  GrammarMatcher m(Grammar::parse(gbnf));
  GrammarMatcher::State s = m.feed(m.start(), text);
  return s != GrammarMatcher::kDead && m.accepts(s);
}

// Whether `text` can still be completed (a prefix of some sentence).
bool viable(const std::string& gbnf, const std::string& text) {
  GrammarMatcher m(Grammar::parse(gbnf));
  return m.feed(m.start(), text) != GrammarMatcher::kDead;
}

std::string parse_error(const std::string& gbnf) {
  try {
    Grammar::parse(gbnf);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Grammar, LiteralsAlternativesAndGroups) {
  const std::string g = "root ::= \"a\" ( \"b\" | \"cd\" ) \"e\"";
  EXPECT_TRUE(matches(g, "abe"));
  EXPECT_TRUE(matches(g, "acde"));
  EXPECT_FALSE(matches(g, "ace"));
  EXPECT_FALSE(matches(g, "ab"));
  EXPECT_TRUE(viable(g, "ac"));
  EXPECT_FALSE(viable(g, "ax"));
}

TEST(Grammar, RepetitionOperators) {
  EXPECT_TRUE(matches("root ::= \"a\"*", ""));
  EXPECT_TRUE(matches("root ::= \"a\"*", "aaaa"));
  EXPECT_FALSE(matches("root ::= \"a\"+", ""));
  EXPECT_TRUE(matches("root ::= \"a\"+ \"b\"?", "aab"));
  EXPECT_FALSE(matches("root ::= \"a\"+ \"b\"?", "aabb"));
  const std::string bounded = "root ::= [0-9]{2,4}";
  EXPECT_FALSE(matches(bounded, "1"));
  EXPECT_TRUE(matches(bounded, "12"));
  EXPECT_TRUE(matches(bounded, "1234"));
  EXPECT_FALSE(viable(bounded, "12345"));
  EXPECT_TRUE(matches("root ::= \"x\"{3}", "xxx"));
  EXPECT_FALSE(matches("root ::= \"x\"{3}", "xx"));
  EXPECT_TRUE(matches("root ::= \"x\"{2,}", "xxxxxxx"));
  EXPECT_FALSE(matches("root ::= \"x\"{2,}", "x"));
}

TEST(Grammar, RecursionAndRuleReferences) {
  // Balanced parentheses, with a rule used before its definition.
  const std::string g = "root ::= item*\nitem ::= \"(\" root \")\"";
  EXPECT_TRUE(matches(g, "(()(()))"));
  EXPECT_FALSE(matches(g, "(()"));
  EXPECT_FALSE(viable(g, "())"));
  // Right recursion stays at a constant depth: a long text is fine.
  EXPECT_TRUE(matches("root ::= \"a\" root | \"\"", std::string(5000, 'a')));
}

TEST(Grammar, CommentsAndLineBreaks) {
  const std::string g =
      "# a comment\n"
      "root ::= greeting \" \"\n"
      "         name   # trailing comment\n"
      "greeting ::= \"hello\"\n"
      "  | \"hi\"\n"
      "name ::= [a-z]+\n";
  EXPECT_TRUE(matches(g, "hello world"));
  EXPECT_TRUE(matches(g, "hi bob"));
  EXPECT_FALSE(matches(g, "hey bob"));
}

TEST(Grammar, EscapesInLiteralsAndClasses) {
  EXPECT_TRUE(matches("root ::= \"a\\nb\\t\\\"\\\\\"", "a\nb\t\"\\"));
  EXPECT_TRUE(matches("root ::= \"\\x41\\u00e9\\U0001F600\"", "A\xc3\xa9\xf0\x9f\x98\x80"));
  EXPECT_TRUE(matches("root ::= [\\]\\-]+", "]-]"));
  EXPECT_TRUE(matches("root ::= [^\\n]*", "no newline here"));
  EXPECT_FALSE(matches("root ::= [^\\n]*", "a\nb"));
}

// The UTF-8 compilation of classes, checked code point by code point
// against a plain membership test over every character.
TEST(Grammar, UnicodeClassesMatchExactlyTheirCodePoints) {
  const std::string g = "root ::= [^a-z\\u00e0-\\u00ff\\u4e00-\\u9fff\\U0001F000-\\U0001F0FF]";
  GrammarMatcher m(Grammar::parse(g));
  auto encode = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else if (cp < 0x800) s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
      s += static_cast<char>(0xE0 | (cp >> 12)), s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
          s += static_cast<char>(0x80 | (cp & 0x3F));
    else
      s += static_cast<char>(0xF0 | (cp >> 18)), s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
          s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), s += static_cast<char>(0x80 | (cp & 0x3F));
    return s;
  };
  auto in_class = [](uint32_t cp) {
    const bool excluded = (cp >= 'a' && cp <= 'z') || (cp >= 0xE0 && cp <= 0xFF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
                          (cp >= 0x1F000 && cp <= 0x1F0FF);
    return !excluded && !(cp >= 0xD800 && cp <= 0xDFFF);
  };
  size_t checked = 0;
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x20000 ? 1 : 97)) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // not encodable
    GrammarMatcher::State s = m.feed(m.start(), encode(cp));
    const bool accepted = s != GrammarMatcher::kDead && m.accepts(s);
    ASSERT_EQ(accepted, in_class(cp)) << "code point U+" << std::hex << cp;
    ++checked;
  }
  EXPECT_GT(checked, 100000u);
  // Invalid UTF-8 never matches, even with "any character".
  EXPECT_FALSE(viable("root ::= .*", "\xc0\x80"));
  EXPECT_FALSE(viable("root ::= .*", "\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(viable("root ::= .*", "\xff"));
  EXPECT_TRUE(matches("root ::= .*", "caf\xc3\xa9 \xe2\x82\xac"));
}

TEST(Grammar, MinRemainingAndFinished) {
  GrammarMatcher m(Grammar::parse("root ::= \"ab\" [0-9]{3} \"!\"?"));
  auto s = m.start();
  EXPECT_EQ(m.min_remaining(s), 5u);
  s = m.feed(s, "ab1");
  EXPECT_EQ(m.min_remaining(s), 2u);
  s = m.feed(s, "23");
  EXPECT_TRUE(m.accepts(s));
  EXPECT_FALSE(m.finished(s));  // "!" may follow
  EXPECT_EQ(m.min_remaining(s), 0u);
  s = m.feed(s, "!");
  EXPECT_TRUE(m.finished(s));
}

TEST(Grammar, CompactKeepsTheCurrentState) {
  GrammarMatcher m(Grammar::parse("root ::= \"{\" [a-z]* \"}\""));
  auto s = m.feed(m.start(), "{abc");
  const size_t before = m.state_count();
  s = m.compact(s);
  EXPECT_LE(m.state_count(), before);
  EXPECT_TRUE(m.accepts(m.feed(s, "de}")));
  EXPECT_TRUE(m.accepts(m.feed(m.start(), "{}")));
}

TEST(Grammar, ErrorsNameTheProblemAndThePlace) {
  EXPECT_NE(parse_error("root ::= missing").find("rule 'missing' is used but never defined"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"\nroot ::= \"b\"").find("line 2, column 1: rule 'root' is defined twice"),
            std::string::npos)
      << parse_error("root ::= \"a\"\nroot ::= \"b\"");
  EXPECT_NE(parse_error("start ::= \"a\"").find("there is no rule 'root'"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"abc").find("unterminated string literal"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [a-").find("unterminated character class"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [z-a]").find("character range out of order"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"\\q\"").find("unknown escape '\\q'"), std::string::npos);
  EXPECT_NE(parse_error("root ::= ( \"a\"").find("expected ')'"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"{3,1}").find("the maximum is below the minimum"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"{999999}").find("repetition count over"), std::string::npos);
  EXPECT_NE(parse_error("root := \"a\"").find("expected '::='"), std::string::npos);
  EXPECT_NE(parse_error("root ::= root \"a\" | \"b\"").find("left-recursive"), std::string::npos);
  EXPECT_NE(parse_error("root ::= x\nx ::= \"a\" x").find("can never finish"), std::string::npos);
  EXPECT_NE(parse_error("root ::= @").find("expected a literal, a character class, a rule name or '('"),
            std::string::npos);
}

// A star over something that can be empty could loop on empty matches:
// it is refused as left recursion (as llama.cpp does), with the rule named.
TEST(Grammar, StarOverAnEmptyMatchIsRefused) {
  const std::string e = parse_error("root ::= ( \"a\"? )* \"b\"");
  EXPECT_NE(e.find("left-recursive"), std::string::npos) << e;
  EXPECT_NE(e.find("root"), std::string::npos) << e;
  EXPECT_TRUE(matches("root ::= \"a\"* \"b\"", "aaab"));
}

}  // namespace
}  // namespace flatline
