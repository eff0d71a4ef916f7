# Embeds data/models/*.json (the model catalog) into moe_spec as a generated .cc, so
# `moe inspect NAME` works offline with no installed data files.
# Included from src/CMakeLists.txt; re-runs itself in script mode (-P) to write the source.
if(CMAKE_SCRIPT_MODE_FILE)
  set(body "// Generated from data/models/*.json by src/spec/embed_catalog.cmake. Do not edit.\n")
  string(APPEND body "#include <string_view>\n#include <utility>\n#include <vector>\n\nnamespace moe::spec_detail {\n\n")
  string(APPEND body "const std::vector<std::pair<std::string_view, std::string_view>>& embedded_catalog_files() {\n")
  string(APPEND body "  static const std::vector<std::pair<std::string_view, std::string_view>> files = {\n")
  foreach(f IN LISTS FILES)
    get_filename_component(name ${f} NAME)
    file(READ ${f} text)
    string(APPEND body "      {\"${name}\", R\"moejson(${text})moejson\"},\n")
  endforeach()
  string(APPEND body "  };\n  return files;\n}\n\n}  // namespace moe::spec_detail\n")
  file(WRITE ${OUT}.tmp "${body}")
  file(RENAME ${OUT}.tmp ${OUT})
  return()
endif()

file(GLOB moe_catalog_json CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/data/models/*.json)
set(moe_catalog_cc ${CMAKE_CURRENT_BINARY_DIR}/catalog_data.cc)
add_custom_command(
  OUTPUT ${moe_catalog_cc}
  COMMAND ${CMAKE_COMMAND} -DOUT=${moe_catalog_cc} "-DFILES=${moe_catalog_json}" -P
          ${CMAKE_CURRENT_LIST_DIR}/embed_catalog.cmake
  DEPENDS ${moe_catalog_json} ${CMAKE_CURRENT_LIST_DIR}/embed_catalog.cmake
  COMMENT "Embedding the model catalog (data/models)"
  VERBATIM)
target_sources(moe_spec PRIVATE ${moe_catalog_cc})
