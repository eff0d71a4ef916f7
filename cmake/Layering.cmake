# The layer graph, from the layers' link dependencies (moe_add_layer's DEPS in src/CMakeLists.txt):
# a layer may include its own headers and those of every layer it depends on, directly or through
# other layers, and nothing else. moe_write_layering() writes the graph and each layer's closure to
# a file that CheckLayering.cmake (the `layering` test) reads, so the allowed includes are derived
# from the link graph at configure time rather than kept as a second list.

# Records layer `name` with its direct dependencies (layer names, not targets).
function(moe_record_layer name)
  set_property(GLOBAL APPEND PROPERTY MOE_LAYER_NAMES ${name})
  set_property(GLOBAL PROPERTY MOE_LAYER_DEPS_${name} ${ARGN})
endfunction()

# Every layer `name` reaches through its dependencies, itself included, into out_var.
function(moe_layer_closure name out_var)
  set(seen ${name})
  set(todo ${name})
  while(todo)
    list(POP_FRONT todo l)
    get_property(deps GLOBAL PROPERTY MOE_LAYER_DEPS_${l})
    foreach(d IN LISTS deps)
      if(NOT d IN_LIST seen)
        list(APPEND seen ${d})
        list(APPEND todo ${d})
      endif()
    endforeach()
  endwhile()
  list(SORT seen)
  set(${out_var} ${seen} PARENT_SCOPE)
endfunction()

# Writes MOE_LAYERS, MOE_LAYER_DEPS_<layer> and MOE_LAYER_ALLOWED_<layer> to `file`; fails on a
# dependency that is not a layer or on a cycle.
function(moe_write_layering file)
  get_property(layers GLOBAL PROPERTY MOE_LAYER_NAMES)
  set(text "# Generated at configure time from the layers' DEPS in src/CMakeLists.txt (cmake/Layering.cmake).\n")
  string(APPEND text "set(MOE_LAYERS \"${layers}\")\n")
  foreach(l IN LISTS layers)
    get_property(deps GLOBAL PROPERTY MOE_LAYER_DEPS_${l})
    foreach(d IN LISTS deps)
      if(NOT d IN_LIST layers)
        message(FATAL_ERROR "layer ${l} depends on ${d}, which is not a layer added before it")
      endif()
    endforeach()
    moe_layer_closure(${l} allowed)
    foreach(d IN LISTS deps)
      moe_layer_closure(${d} below)
      if(l IN_LIST below)
        message(FATAL_ERROR "layers ${l} and ${d} depend on each other (a cycle)")
      endif()
    endforeach()
    string(APPEND text "set(MOE_LAYER_DEPS_${l} \"${deps}\")\nset(MOE_LAYER_ALLOWED_${l} \"${allowed}\")\n")
  endforeach()
  file(CONFIGURE OUTPUT ${file} CONTENT "${text}")
endfunction()
