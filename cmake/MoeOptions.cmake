# Warnings, sanitizers and the per-ISA compile flags shared by every target.
add_compile_options(-Wall -Wextra -Wno-unused-parameter)
if(CMAKE_BUILD_TYPE STREQUAL "Release")
  add_compile_options(-O3)
endif()
# The binary must run on any x86-64: no -march=native. ISA-specific kernels are
# compiled in their own translation units (named *_avx2.cc, *_avx512.cc, *_avx512bf16.cc, *_avx512vnni.cc)
# with the flags below and chosen at run time by runtime/cpu_features.
# -ffp-contract=off: FMAs only where the code asks for them, so a scalar tail computes what the portable
# code computes (the quantized kernels are bit-identical to their scalar twin).
set(MOE_FLAGS_AVX2 -mavx2 -mfma -mf16c -ffp-contract=off)
# -Wno-uninitialized: GCC 12's avx512fintrin.h warns inside _mm512_reduce_add_ps (a header false positive).
set(MOE_FLAGS_AVX512 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mavx2 -mf16c -ffp-contract=off -Wno-uninitialized)
set(MOE_FLAGS_AVX512BF16 ${MOE_FLAGS_AVX512} -mavx512bf16)
# The VNNI translation units also hold the AMX-INT8 tile kernels (run only where cpu_features says so).
set(MOE_FLAGS_AVX512VNNI ${MOE_FLAGS_AVX512} -mavx512vnni -mamx-tile -mamx-int8)

if(MOE_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(MOE_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT MOE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "MOE_SANITIZE must be empty, 'address' or 'thread', got '${MOE_SANITIZE}'")
endif()

# Applies the ISA flags to every source of TARGET whose name says which ISA it is for.
function(moe_apply_isa_flags target)
  get_target_property(srcs ${target} SOURCES)
  foreach(src IN LISTS srcs)
    if(src MATCHES "_avx512vnni\\.cc$")
      set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${MOE_FLAGS_AVX512VNNI}")
    elseif(src MATCHES "_avx512bf16\\.cc$")
      set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${MOE_FLAGS_AVX512BF16}")
    elseif(src MATCHES "_avx512\\.cc$")
      set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${MOE_FLAGS_AVX512}")
    elseif(src MATCHES "_avx2\\.cc$")
      set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${MOE_FLAGS_AVX2}")
    endif()
  endforeach()
endfunction()
