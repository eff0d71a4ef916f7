// Numeric flags: every numeric option of every `moe` command is declared with a range
// (cli/flags.h), and the check rejects NaN, infinities, fractions for integers, values beyond the
// type and outside the range, naming the range; --log-every 0 and friends are usage errors.
#include "cli/flags.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <regex>
#include <string>

#include "cli/command.h"
#include "moe_process.h"

namespace moe::cli {
namespace {

TEST(Flags, EveryNumericOptionHasARange) {
  CLI::App app{"moe"};
  GlobalOptions global;
  build_app(app, global);
  const std::vector<std::string> missing = numeric_options_without_range(app);
  std::string list;
  for (const auto& m : missing) list += m + "\n";
  EXPECT_TRUE(missing.empty()) << "numeric options declared without add_number / number_in:\n" << list;
  // The walk sees the options it must check.
  CLI::App probe{"probe"};
  int n = 0;
  probe.add_option("--n", n);
  EXPECT_EQ(numeric_options_without_range(probe), std::vector<std::string>{"moe --n"});
}

std::string check(std::string text, NumberRange r) { return check_number(text, r); }

TEST(Flags, CheckNumber) {
  const NumberRange ints{.kind = NumberKind::kSigned, .lo = 1, .hi = 1000, .note = ""};
  EXPECT_EQ(check("1", ints), "");
  EXPECT_EQ(check("1000", ints), "");
  for (const char* bad : {"0", "1001", "-1", "1.5", "nan", "inf", "-inf", "", " 5", "5 ", "1e400", "abc", "5x",
                          "99999999999999999999999"}) {
    const std::string e = check(bad, ints);
    EXPECT_NE(e.find("expected an integer from 1 to 1000"), std::string::npos) << bad << ": " << e;
  }
  std::string sci = "1e3";
  EXPECT_EQ(check_number(sci, ints), "");
  EXPECT_EQ(sci, "1000");  // rewritten for CLI11's conversion
  const NumberRange u64{.kind = NumberKind::kUnsigned, .lo = 0, .hi = 18446744073709551615.0L, .note = ""};
  EXPECT_EQ(check("18446744073709551615", u64), "");
  EXPECT_NE(check("18446744073709551616", u64), "");
  EXPECT_NE(check("-1", u64), "");
  const NumberRange rate{.kind = NumberKind::kFloat, .lo = 0, .hi = 10, .lo_open = true, .note = ""};
  EXPECT_EQ(check("0.5", rate), "");
  EXPECT_EQ(check("1e-3", rate), "");
  for (const char* bad : {"0", "-0.1", "10.01", "nan", "NaN", "inf", "1e999"}) {
    EXPECT_NE(check(bad, rate).find("greater than 0 and at most 10"), std::string::npos) << bad;
  }
  // Decimal bounds: the value is compared as the flag's type will hold it (0.01 is not below 0.01).
  EXPECT_EQ(check("0.01", {.kind = NumberKind::kFloat, .lo = 0.01, .hi = 1, .note = ""}), "");
  EXPECT_EQ(check("0.1", {.kind = NumberKind::kFloat, .lo = 0.1f, .hi = 1, .note = "", .single = true}), "");
  EXPECT_NE(check("1e39", {.kind = NumberKind::kFloat, .lo = 0, .hi = 3.4e38f, .note = "", .single = true}), "");
  EXPECT_EQ(describe(ints), "[1, 1000]");
  EXPECT_EQ(describe(rate), "(0, 10]");
}

using moe::testing::run_moe;

// End to end: each a usage error (exit 2) whose message names the flag and its range.
TEST(Flags, BadValuesAreUsageErrorsNamingTheFlag) {
  const struct {
    const char* args;
    const char* flag;
  } cases[] = {
      {"train --log-every 0", "--log-every"},
      {"train --steps -5", "--steps"},
      {"train --lr nan", "--lr"},
      {"train --lr inf", "--lr"},
      {"train --batch 0", "--batch"},
      {"train --seed -1", "--seed"},
      {"train --seed 1e30", "--seed"},
      {"train --val-fraction 1", "--val-fraction"},
      {"train --layers 1e9", "--layers"},
      {"run --top-p 0", "--top-p"},
      {"run --temp -1", "--temp"},
      {"run --max-new-tokens 1.5", "--max-new-tokens"},
      {"eval --ep 0", "--ep"},
      {"inspect qwen3-30b-a3b --context 0", "--context"},
      {"inspect qwen3-30b-a3b --kv-bytes 0", "--kv-bytes"},
      {"bench layer --tokens 1,-4", "--tokens"},
      {"bench ceilings --stream-mib 1e30", "--stream-mib"},
      {"bench model --layers 0", "--layers"},
  };
  for (const auto& c : cases) {
    const auto r = run_moe(c.args, true);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.out;
    EXPECT_NE(r.out.find(fmt::format("moe: [cli] {}: expected", c.flag)), std::string::npos) << c.args << ": " << r.out;
  }
}

TEST(Flags, UnknownCommandIsNamed) {
  const auto r = run_moe("--threads 1 frobnicate --x", true);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown command 'frobnicate'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("train"), std::string::npos) << r.out;  // the list of commands
}

// Messages that tell the user which flag to change name flags `moe train` has (a rename must not leave
// an error pointing at a flag that is gone).
TEST(Flags, TrainingMessagesNameRealFlags) {
  const std::string help = run_moe("train --help").out;
  ASSERT_NE(help.find("--experts-per-token"), std::string::npos) << help;
  for (const char* file : {"/src/train/run_settings.cc", "/src/train/train_memory.cc"}) {
    std::ifstream in(std::string(MOE_SOURCE_DIR) + file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(text.empty()) << file;
    const std::regex flag("\"(--[a-z][a-z0-9-]*)\"");
    int n = 0;
    for (std::sregex_iterator it(text.begin(), text.end(), flag), end; it != end; ++it, ++n) {
      const std::string name = (*it)[1];
      EXPECT_NE(help.find(name + " "), std::string::npos) << file << " names " << name << ", which train lacks";
    }
    EXPECT_GT(n, 5) << file;
  }
}

}  // namespace
}  // namespace moe::cli
