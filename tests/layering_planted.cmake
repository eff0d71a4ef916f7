# Shows that the layering check (cmake/CheckLayering.cmake) fails where it should: (1) a copy of src/
# where kernels/ includes spec/model_spec.h (kernels depends on runtime and util only) must fail
# naming the file and the layers kernels may include, while the unmodified copy passes; (2) a copy with
# an AVX-512 source in train/ must fail (ISA code lives in kernels/); (3) the graph with an extra,
# unused link edge kernels -> spec must fail naming the edge.
# Run as: cmake -DSRC_DIR=... -DLAYERING=... -DWORK_DIR=... -DCHECK=... -P layering_planted.cmake
cmake_minimum_required(VERSION 3.20)  # script mode: current policies
function(run_check src layering out_code out_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DSRC_DIR=${src} -DLAYERING=${layering} -P ${CHECK}
                  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_code} ${code} PARENT_SCOPE)
  set(${out_text} "${out}${err}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(COPY ${SRC_DIR}/ DESTINATION ${WORK_DIR}/src)
run_check(${WORK_DIR}/src ${LAYERING} code text)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "the unmodified copy of src/ fails the check:\n${text}")
endif()

file(WRITE ${WORK_DIR}/src/kernels/planted_upward.h "#pragma once\n#include \"spec/model_spec.h\"\n")
run_check(${WORK_DIR}/src ${LAYERING} code text)
if(code EQUAL 0)
  message(FATAL_ERROR "kernels/ including spec/ passed the layering check:\n${text}")
endif()
if(NOT text MATCHES "kernels/planted_upward.h: #include \"spec/model_spec.h\" \\(layer 'kernels' may include only: kernels;runtime;util\\)")
  message(FATAL_ERROR "the failure does not name the planted include and the allowed layers:\n${text}")
endif()

file(REMOVE ${WORK_DIR}/src/kernels/planted_upward.h)
# An AVX-512 file name, then an intrinsics include, each alone.
foreach(planted IN ITEMS "planted_avx512.cc|int planted;"  "planted_intrin.cc|#include <immintrin.h>")
  string(REPLACE "|" ";" planted "${planted}")
  list(GET planted 0 name)
  list(GET planted 1 body)
  file(WRITE ${WORK_DIR}/src/train/${name} "${body}\n")
  run_check(${WORK_DIR}/src ${LAYERING} code text)
  if(code EQUAL 0 OR NOT text MATCHES "train/${name}: ISA-specific code outside src/kernels/")
    message(FATAL_ERROR "train/${name} (${body}) passed the layering check:\n${text}")
  endif()
  file(REMOVE ${WORK_DIR}/src/train/${name})
endforeach()

include(${LAYERING})
file(READ ${LAYERING} graph)
string(REPLACE "set(MOE_LAYER_DEPS_kernels \"${MOE_LAYER_DEPS_kernels}\")"
               "set(MOE_LAYER_DEPS_kernels \"${MOE_LAYER_DEPS_kernels};spec\")" graph "${graph}")
file(WRITE ${WORK_DIR}/layering_extra_edge.cmake "${graph}")
run_check(${SRC_DIR} ${WORK_DIR}/layering_extra_edge.cmake code text)
if(code EQUAL 0 OR NOT text MATCHES "layer 'kernels' links 'spec' but none of its sources includes spec/")
  message(FATAL_ERROR "an unused link edge kernels -> spec was not reported:\n${text}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "the layering check fails on a planted upward include, ISA code outside kernels/ and an unused link edge")
