// The Python module `moe`: errors, moe.inspect / moe.catalog (the JSON of `moe inspect --json`),
// moe.Tokenizer, the thread count; moe.Model lives in model.cc. Every call goes through the
// functions the CLI commands call, so Python and the command line give the same answers and the
// same error messages.
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "cli/inspect.h"
#include "runtime/thread_pool.h"
#include "spec/report.h"
#include "tokenizer/tokenizer.h"

namespace moe::python {
namespace {

// moe.Error (a RuntimeError) and moe.UsageError (an Error): str(e) is what the CLI prints after
// "moe: "; e.component is the [component] of the message.
void register_errors(py::module_& m) {
  // Handles without a destructor: the types live as long as the interpreter.
  static py::handle error = PyErr_NewExceptionWithDoc(
      "moe.Error", "An error of the moe engine; str(e) is the message `moe` prints after 'moe: '.", PyExc_RuntimeError,
      nullptr);
  static py::handle usage = PyErr_NewExceptionWithDoc(
      "moe.UsageError", "A usage error (a bad argument); the CLI exits 2 for these.", error.ptr(), nullptr);
  if (!error || !usage) throw py::error_already_set();
  m.add_object("Error", error);
  m.add_object("UsageError", usage);
  py::register_exception_translator([](std::exception_ptr p) {
    auto raise = [](py::handle type, const Error& e) {
      py::object instance = py::reinterpret_borrow<py::object>(type)(e.what());
      instance.attr("component") = e.component();
      PyErr_SetObject(type.ptr(), instance.ptr());
    };
    try {
      if (p) std::rethrow_exception(p);
    } catch (const UsageError& e) {
      raise(usage, e);
    } catch (const Error& e) {
      raise(error, e);
    }
  });
}

// moe.inspect's targets: a str (catalog name, config.json, model folder), a dict (a config.json's
// contents) or a list of those.
void add_target(const py::handle& target, std::vector<cli::InspectTarget>& out, const std::string& name) {
  if (py::isinstance<py::str>(target) || py::hasattr(target, "__fspath__")) {
    out.push_back({*path_arg(py::reinterpret_borrow<py::object>(target)), {}});
  } else if (py::isinstance<py::dict>(target)) {
    const std::string text = py::module_::import("json").attr("dumps")(target).cast<std::string>();
    out.push_back({name.empty() ? std::string("config") : name, text});
  } else {
    throw UsageError("python", fmt::format("inspect: expected a model name, a path or a config dict, found {}",
                                           py::str(py::type::of(target).attr("__name__")).cast<std::string>()));
  }
}

py::object inspect(const py::object& model, int64_t context, int64_t batch, int64_t prompt, int64_t ep, double kv_bytes,
                   bool explain, const std::string& name) {
  Workload w;
  w.context = checked("context", context, int64_t{1}, cli::kMaxAccountedTokens);
  w.batch = checked("batch", batch, int64_t{1}, cli::kMaxAccountedTokens);
  w.prompt = checked("prompt", prompt, int64_t{0}, cli::kMaxAccountedTokens);
  w.ep_ranks = checked("ep", ep, int64_t{1}, cli::kMaxAccountedEpRanks);
  w.kv_bytes_per_elem = checked("kv_bytes", kv_bytes, 0.0, cli::kMaxKvBytesPerElem, true);
  std::vector<cli::InspectTarget> targets;
  const bool several = py::isinstance<py::list>(model) || py::isinstance<py::tuple>(model);
  if (several) {
    for (const py::handle& t : model) add_target(t, targets, name);
  } else {
    add_target(model, targets, name);
  }
  if (targets.empty()) throw UsageError("python", "inspect: name at least one model");
  const nlohmann::ordered_json j = cli::inspect_json(targets, w, explain);
  return to_python(several ? j["models"] : j["models"][0]);
}

void register_tokenizer(py::module_& m) {
  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(m, "Tokenizer", R"(A model's tokenizer: a tokenizer.json, a
model folder holding one, or a .gguf file's vocabulary (as `moe tokenize --tokenizer PATH`).)")
      .def(py::init([](const py::object& path) {
             return std::shared_ptr<Tokenizer>(load_tokenizer(path_arg(path).value_or("")));
           }),
           py::arg("path"))
      .def(
          "encode",
          [](const Tokenizer& t, const std::string& text, bool add_special) {
            py::gil_scoped_release release;
            return t.encode(text, add_special);
          },
          py::arg("text"), py::arg("add_special") = false,
          "Text to ids (`moe tokenize`); add_special adds what the post-processor adds (--add-special).")
      .def(
          "encode_prompt",
          [](const Tokenizer& t, const std::string& text) {
            py::gil_scoped_release release;
            return t.encode_prompt(text);
          },
          py::arg("text"), "A prompt's ids as `moe run --prompt` encodes it (BOS as the tokenizer config says).")
      .def(
          "decode",
          [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special) {
            std::string text;
            {
              py::gil_scoped_release release;
              text = t.decode(ids, skip_special);
            }
            return to_str(text);
          },
          py::arg("ids"), py::arg("skip_special") = false, "Ids to text (`moe detokenize`, --skip-special).")
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def_property_readonly("bos_id", &Tokenizer::bos_id)
      .def_property_readonly("eos_id", &Tokenizer::eos_id)
      .def_property_readonly("path", &Tokenizer::path)
      .def("token_to_id", &Tokenizer::token_to_id, py::arg("token"), "The id of a token string, or -1.")
      .def(
          "id_to_token", [](const Tokenizer& t, int32_t id) { return to_str(t.id_to_token(id)); }, py::arg("id"),
          "The token string of an id, or ''.")
      .def("__repr__", [](const Tokenizer& t) { return "<moe.Tokenizer " + t.summary() + ">"; });
}

}  // namespace

void init_module(py::module_& m) {
  m.doc() = "moe: an engine for sparse Mixture-of-Experts transformers (docs/PYTHON.md)";
  m.attr("__version__") = MOE_VERSION;
  register_errors(m);
  m.def("inspect", &inspect, py::arg("model"), py::kw_only(), py::arg("context") = int64_t{4096},
        py::arg("batch") = int64_t{1}, py::arg("prompt") = int64_t{0}, py::arg("ep") = int64_t{1},
        py::arg("kv_bytes") = 2.0, py::arg("explain") = false, py::arg("name") = std::string(),
        R"(A model's dict of `moe inspect --json` (its "models"[0]): parameters, FLOPs, KV cache, bytes, decode
floor, EP traffic.

model: a catalog name, a config.json, a model folder (its safetensors headers are cross-checked), a
dict holding a config.json's contents (reported under `name`, default "config"), or a list of these
(then a list of dicts, the CLI's "models"). Keywords mirror the flags: context, batch, prompt, ep, kv_bytes, explain.)");
  m.def(
      "catalog", [] { return to_python(catalog_json()["catalog"]); },
      "The embedded catalog: the list `moe inspect --list --json` prints under \"catalog\".");
  m.def(
      "set_threads", [](int n) { set_num_threads(checked("threads", n, 1, kMaxThreads)); }, py::arg("n"),
      "Worker threads of the process-wide pool (as --threads).");
  m.def("threads", &num_threads, "Worker threads of the process-wide pool.");
  register_tokenizer(m);
  register_model(m);
}

}  // namespace moe::python

PYBIND11_MODULE(moe, m) { moe::python::init_module(m); }
