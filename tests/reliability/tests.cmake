# Fault injection: kill -9 at random moments of every command that writes files (train checkpoints,
# eval --logits-out, quantize --out, plot --out); each output stays the old or the new one whole and no
# temporary outlives the next run. Runs in `make test` and under ASan in `make check-all`.
if(TARGET moe)
  add_test(NAME reliability_kill9
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/kill9.sh $<TARGET_FILE:moe> ${CMAKE_CURRENT_BINARY_DIR}/kill9_work)
  set_tests_properties(reliability_kill9 PROPERTIES LABELS "reliability" TIMEOUT 1200)
endif()
