// Safetensors: round trip of every dtype, sharded checkpoints, header-only reads, and malformed
// files that must each give a clear [safetensors] error naming the file (and tensor), never a crash.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moe_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes a file from a header (JSON text) and a data section, with the header length given or computed.
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                        int64_t header_len = -1) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    uint64_t len = header_len < 0 ? header.size() : static_cast<uint64_t>(header_len);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(len >> (8 * i)));
    out << header << data;
    return path;
  }

  // Expects opening `path` to throw a moe::Error whose message contains every needle.
  void expect_error(const std::string& path, std::vector<std::string> needles) {
    try {
      SafetensorsFile::open(path);
      FAIL() << "no error for " << path;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("[safetensors]"), std::string::npos) << msg;
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
    }
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, RoundTripsEveryDtype) {
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorToWrite> tensors;
  const DType all[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16,  DType::kI64,    DType::kI32,
                       DType::kI16, DType::kI8,  DType::kU8,  DType::kBool,  DType::kF8E4M3, DType::kF8E5M2,
                       DType::kU16, DType::kU32, DType::kU64, DType::kF8E8M0};
  int idx = 0;
  for (DType t : all) {
    const std::vector<int64_t> shape = {3, idx % 3 + 1};
    const size_t n = 3 * (idx % 3 + 1) * dtype_size(t);
    storage.emplace_back(n);
    for (size_t i = 0; i < n; ++i) storage.back()[i] = static_cast<uint8_t>(i * 7 + idx);
    tensors.push_back({"t." + std::string(dtype_name(t)), t, shape, storage.back()});
    ++idx;
  }
  tensors.push_back({"empty", DType::kF32, {0, 4}, {}});
  tensors.push_back({"scalar", DType::kF32, {}, storage[1]});
  tensors.back().bytes = std::span<const uint8_t>(storage[1].data(), 4);
  const std::string path = (dir_ / "all.safetensors").string();
  write_safetensors(path, tensors, {{"format", "pt"}});
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));

  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (const TensorToWrite& t : tensors) {
    const TensorInfo& info = f.info(t.name);
    EXPECT_EQ(info.dtype, t.dtype) << t.name;
    EXPECT_EQ(info.shape, t.shape) << t.name;
    EXPECT_EQ(info.begin % 8, 0u) << t.name;
    auto b = f.bytes(t.name);
    ASSERT_EQ(b.size(), t.bytes.size());
    EXPECT_TRUE(std::equal(b.begin(), b.end(), t.bytes.begin())) << t.name;
  }
  auto v = f.view<float>("t.F32", DType::kF32);
  EXPECT_EQ(v.size(), 3u * 2u);
  EXPECT_THROW(f.view<uint16_t>("t.F32", DType::kBF16), Error);
  EXPECT_THROW(f.info("nope"), Error);
}

TEST_F(SafetensorsTest, ConvertsFloatTensorsToF32) {
  const std::vector<float> values = {1.0f, -2.5f, 0.125f, 3.0f};
  std::vector<uint16_t> bf(values.size());
  convert_from_f32(DType::kBF16, values.data(), bf.data(), values.size());
  const std::string path = (dir_ / "bf.safetensors").string();
  write_safetensors(path, {{"w", DType::kBF16, {2, 2}, {reinterpret_cast<const uint8_t*>(bf.data()), bf.size() * 2}}});
  EXPECT_EQ(SafetensorsFile::open(path).to_f32("w"), values);
}

TEST_F(SafetensorsTest, HeaderOnlyReadsShapesWithoutData) {
  const std::vector<float> values(1000, 1.0f);
  const std::string path = (dir_ / "h.safetensors").string();
  write_safetensors(path, {{"w", DType::kF32, {10, 100}, {reinterpret_cast<const uint8_t*>(values.data()), 4000}}});
  const SafetensorsFile f = SafetensorsFile::open_header_only(path);
  EXPECT_EQ(f.info("w").numel(), 1000);
  EXPECT_THROW(f.bytes("w"), Error);
}

TEST_F(SafetensorsTest, ShardedCheckpoint) {
  const std::vector<float> a = {1, 2, 3}, b = {4, 5};
  write_safetensors((dir_ / "model-00001-of-00002.safetensors").string(),
                    {{"a", DType::kF32, {3}, {reinterpret_cast<const uint8_t*>(a.data()), 12}}});
  write_safetensors((dir_ / "model-00002-of-00002.safetensors").string(),
                    {{"b", DType::kF32, {2}, {reinterpret_cast<const uint8_t*>(b.data()), 8}}});
  nlohmann::json index = {
      {"metadata", {{"total_size", 20}}},
      {"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  write_file_atomic((dir_ / "model.safetensors.index.json").string(), index.dump());
  const Checkpoint c = Checkpoint::open(dir_.string());
  EXPECT_EQ(c.n_files(), 2u);
  EXPECT_EQ(c.tensor_names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.file_of("b").to_f32("b"), b);
  EXPECT_EQ(c.info("a").shape, std::vector<int64_t>{3});
  EXPECT_THROW(c.info("c"), Error);
}

TEST_F(SafetensorsTest, ShardIndexErrors) {
  write_file_atomic((dir_ / "model.safetensors.index.json").string(),
                    R"({"weight_map": {"a": "missing-shard.safetensors"}})");
  try {
    Checkpoint::open(dir_.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing-shard.safetensors"), std::string::npos) << e.what();
  }
  write_file_atomic((dir_ / "model.safetensors.index.json").string(), R"({"metadata": {}})");
  EXPECT_THROW(Checkpoint::open(dir_.string()), Error);
  const std::vector<float> a = {1};
  write_safetensors((dir_ / "s.safetensors").string(),
                    {{"a", DType::kF32, {1}, {reinterpret_cast<const uint8_t*>(a.data()), 4}}});
  write_file_atomic((dir_ / "model.safetensors.index.json").string(), R"({"weight_map": {"zzz": "s.safetensors"}})");
  try {
    Checkpoint::open(dir_.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zzz"), std::string::npos) << e.what();
  }
  // Fuzzing finding (2026-12-06): a shard name longer than the system's limit made std::filesystem throw its
  // own error, which named no file or field.
  write_file_atomic((dir_ / "model.safetensors.index.json").string(),
                    R"({"weight_map": {"a": ")" + std::string(1000, 'O') + R"("}})");
  try {
    Checkpoint::open(dir_.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(holding 'a' and 0 more) is unusable: File name too long"), std::string::npos)
        << e.what();
  }
  try {
    Checkpoint::open((dir_ / std::string(1000, 'O')).string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("File name too long"), std::string::npos) << e.what();
  }
  fs::remove(dir_ / "model.safetensors.index.json");
  fs::remove(dir_ / "s.safetensors");
  EXPECT_THROW(Checkpoint::open(dir_.string()), Error);  // empty folder
  EXPECT_THROW(Checkpoint::open((dir_ / "nothing").string()), Error);
}

TEST_F(SafetensorsTest, MalformedFiles) {
  const std::string ok_entry = R"("w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::string data8(8, '\0');
  {  // 1. shorter than the length prefix
    const std::string path = (dir_ / "tiny.safetensors").string();
    std::ofstream(path) << "abc";
    expect_error(path, {"too short"});
  }
  expect_error(write_raw("past_end.safetensors", "{" + ok_entry + "}", data8, 1 << 20), {"past the end"});  // 2
  expect_error(write_raw("huge.safetensors", "{}", "", int64_t(1) << 40), {"100 MB"});                      // 3
  expect_error(write_raw("badjson.safetensors", "{\"w\": {", ""), {"not valid JSON"});                      // 4
  expect_error(write_raw("array.safetensors", "[1, 2]", ""), {"JSON object"});                              // 5
  expect_error(write_raw("dtype.safetensors", R"({"w": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}})", data8),
               {"'w'", "unknown dtype 'F7'"});  // 6
  expect_error(write_raw("nodtype.safetensors", R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", data8),
               {"'w'", "dtype"});  // 7
  expect_error(
      write_raw("mismatch.safetensors", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data8),
      {"'w'", "needs 12 bytes"});  // 8
  expect_error(write_raw("oob.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", data8),
               {"'w'", "past the data section"});  // 9
  expect_error(write_raw("overlap.safetensors",
                         R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                         std::string(12, '\0')),
               {"'a'", "'b'", "overlap"});  // 10
  expect_error(
      write_raw("reversed.safetensors", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", data8),
      {"'w'", "end before begin"});  // 11
  expect_error(
      write_raw("negshape.safetensors", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data8),
      {"'w'", "non-negative"});  // 12
  expect_error(
      write_raw("badoffsets.safetensors", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", data8),
      {"'w'", "data_offsets"});                                                                        // 13
  expect_error(write_raw("meta.safetensors", R"({"__metadata__": {"x": 1}})", ""), {"__metadata__"});  // 14
  {  // 15. a good file cut short loses its data section
    const std::string path = write_raw("cut.safetensors", "{" + ok_entry + "}", data8.substr(0, 3));
    expect_error(path, {"'w'", "truncated"});
  }
  expect_error((dir_ / "does-not-exist.safetensors").string(), {"cannot open"});  // 16
  // 17. Fuzzing finding (fuzz/safetensors_fuzz.cc): a shape nested 200,000 levels deep parsed, then
  // overflowed the stack when the error message printed it. Nesting is refused before parsing.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  expect_error(
      write_raw("deep.safetensors", R"({"w": {"dtype": "F32", "shape": )" + deep + R"(, "data_offsets": [0, 0]}})", ""),
      {"not valid JSON", "nests deeper than 256"});
  // 18. Fuzzing finding: a number too large for a double ("1e99999") made nlohmann throw out_of_range,
  // which is not a parse_error, so it escaped as "unexpected error" naming no file.
  expect_error(write_raw("bignum.safetensors", R"({"w": {"dtype": "F32", "shape": [1e99999], "data_offsets": [0, 4]}})",
                         std::string(4, '\0')),
               {"not valid JSON", "number overflow"});
  write_file_atomic((dir_ / "model.safetensors.index.json").string(), R"({"weight_map": {"a": 1e99999}})");
  try {
    Checkpoint::open(dir_.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shard index is not valid JSON"), std::string::npos) << e.what();
  }
  fs::remove(dir_ / "model.safetensors.index.json");
  expect_error(write_raw("deep_ok.safetensors", R"({"w": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}})",
                         std::string(4, '\0')),
               {"'w'", "non-negative integers"});
}

// nlohmann keeps the last of two equal keys; a header that names a tensor twice is refused by name,
// whether the whole file or only its header is read.
TEST_F(SafetensorsTest, DuplicateNamesAreRefused) {
  const std::string twice = write_raw("twice.safetensors",
                                      R"({"dup.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                          "dup.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                      std::string(8, '\0'));
  expect_error(twice, {"'dup.weight'", "twice"});
  try {
    SafetensorsFile::open_header_only(twice);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'dup.weight' appears twice"), std::string::npos) << e.what();
  }
  expect_error(write_raw("field.safetensors", R"({"w": {"dtype": "F32", "dtype": "F16", "shape": [1],
                                                   "data_offsets": [0, 4]}})",
                         std::string(4, '\0')),
               {"'w'", "'dtype'", "twice"});
  expect_error(write_raw("meta2.safetensors", R"({"__metadata__": {}, "__metadata__": {}})", ""),
               {"'__metadata__' appears twice"});

  const std::vector<float> a = {1};
  write_safetensors((dir_ / "s.safetensors").string(),
                    {{"a", DType::kF32, {1}, {reinterpret_cast<const uint8_t*>(a.data()), 4}}});
  fs::remove(twice);
  fs::remove(dir_ / "field.safetensors");
  fs::remove(dir_ / "meta2.safetensors");
  write_file_atomic((dir_ / "model.safetensors.index.json").string(),
                    R"({"weight_map": {"a": "s.safetensors", "a": "other.safetensors"}})");
  try {
    Checkpoint::open(dir_.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight_map names tensor 'a' twice"), std::string::npos) << e.what();
  }
}

// A folder where a file is expected is named as such: the file itself, the header-only reader, a
// model folder whose model.safetensors or shard index is a folder, and a shard that is a folder.
TEST_F(SafetensorsTest, FoldersWhereFilesAreExpected) {
  auto message = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string folder = (dir_ / "sub").string();
  fs::create_directories(folder);
  EXPECT_NE(message([&] { SafetensorsFile::open(folder); }).find("is a folder; expected a file"), std::string::npos);
  EXPECT_NE(message([&] { SafetensorsFile::open_header_only(folder); }).find("is a folder; expected a file"),
            std::string::npos);
  fs::create_directories(dir_ / "m1/model.safetensors");
  EXPECT_NE(message([&] { Checkpoint::open((dir_ / "m1").string()); }).find("is a folder; expected a file"),
            std::string::npos);
  EXPECT_NE(message([&] { Checkpoint::open((dir_ / "m1").string(), true); }).find("is a folder; expected a file"),
            std::string::npos);
  fs::create_directories(dir_ / "m2/model.safetensors.index.json");
  EXPECT_NE(message([&] { Checkpoint::open((dir_ / "m2").string()); }).find("is a folder; expected the shard index"),
            std::string::npos);
  fs::create_directories(dir_ / "m3/shard.safetensors");
  write_file_atomic((dir_ / "m3/model.safetensors.index.json").string(),
                    R"({"weight_map": {"a": "shard.safetensors"}})");
  EXPECT_NE(message([&] { Checkpoint::open((dir_ / "m3").string()); }).find("is a folder; expected a file"),
            std::string::npos);
  // A shard outside the folder (or a device) is never a shard.
  for (const char* shard : {"../m1/model.safetensors", "/dev/zero", "..", ""}) {
    write_file_atomic((dir_ / "m3/model.safetensors.index.json").string(),
                      nlohmann::json{{"weight_map", {{"a", shard}}}}.dump());
    EXPECT_NE(message([&] { Checkpoint::open((dir_ / "m3").string()); }).find("expected the name of a shard file"),
              std::string::npos)
        << shard;
  }
  EXPECT_NE(message([&] { SafetensorsFile::open("/dev/zero"); }).find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace moe
