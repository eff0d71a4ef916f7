# Expert parallelism under the real mpirun (only when Open MPI was found): collectives, the EP
# exchange against the naive reference and the EP layer bitwise against one process, with 2 and
# 3 ranks; a rank failing to load makes every rank exit with the error; a rank throwing outside
# any guard aborts the job (MPI_Abort) instead of leaving the others waiting. Each has a timeout,
# and expect_failure.sh rejects a timed-out run, so a hang fails the test. The CLI: `mpirun -np 2
# moe eval --ep 2` gives logits byte-equal to one process on three families; a rank whose model
# folder is missing (MPMD launch: rank 1 gets another --model) makes both ranks exit 1; `moe bench
# layer --ep 2` reports measured bytes equal to the formula on every row; an error on one rank
# outside the guards aborts the job (MPI_Abort) instead of a hang.
if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
  add_executable(mpi_ep ${CMAKE_CURRENT_LIST_DIR}/mpi_ep.cc)
  target_link_libraries(mpi_ep PRIVATE moe_parallel)
  target_include_directories(mpi_ep PRIVATE ${CMAKE_CURRENT_LIST_DIR})

  # As root Open MPI refuses to start without --allow-run-as-root; 2 cores need --oversubscribe.
  set(moe_mpirun ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe)
  set(moe_expect_failure sh ${CMAKE_CURRENT_LIST_DIR}/expect_failure.sh)
  add_test(NAME dist_mpirun_np2_check COMMAND ${moe_mpirun} -np 2 $<TARGET_FILE:mpi_ep> check)
  add_test(NAME dist_mpirun_np3_check COMMAND ${moe_mpirun} -np 3 $<TARGET_FILE:mpi_ep> check)
  add_test(NAME dist_mpirun_np2_fail_load
           COMMAND ${moe_expect_failure} "loading experts failed on rank 1" timeout 100 ${moe_mpirun} -np 2
                   $<TARGET_FILE:mpi_ep> fail-load)
  add_test(NAME dist_mpirun_np2_abort
           COMMAND ${moe_expect_failure} "rank 1 aborts the job: \\[io\\] rank 1 cannot map its experts" timeout 100
                   ${moe_mpirun} -np 2 $<TARGET_FILE:mpi_ep> abort)
  set(moe_ep_tests dist_mpirun_np2_check dist_mpirun_np3_check dist_mpirun_np2_fail_load dist_mpirun_np2_abort)
  foreach(family mixtral deepseek_v3 gpt_oss)
    add_test(NAME cli_mpirun_np2_eval_${family}
             COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/ep_eval_equal.sh $<TARGET_FILE:moe>
                     ${CMAKE_CURRENT_LIST_DIR}/../reference/fixtures/models/${family}
                     ${CMAKE_CURRENT_BINARY_DIR}/ep_eval_${family} 2 ${moe_mpirun})
    list(APPEND moe_ep_tests cli_mpirun_np2_eval_${family})
  endforeach()
  # Three uneven ranks (16 experts: 6 5 5) on the family with group-limited routing and shared experts.
  add_test(NAME cli_mpirun_np3_eval_deepseek_v3
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/ep_eval_equal.sh $<TARGET_FILE:moe>
                   ${CMAKE_CURRENT_LIST_DIR}/../reference/fixtures/models/deepseek_v3
                   ${CMAKE_CURRENT_BINARY_DIR}/ep_eval_np3_deepseek_v3 3 ${moe_mpirun})
  list(APPEND moe_ep_tests cli_mpirun_np3_eval_deepseek_v3)
  set(moe_fixture ${CMAKE_CURRENT_LIST_DIR}/../reference/fixtures/models/mixtral)
  add_test(NAME cli_mpirun_np2_eval_missing_model
           COMMAND ${moe_expect_failure} "loading the model failed on rank 1" timeout 100 ${moe_mpirun}
                   -np 1 $<TARGET_FILE:moe> eval --model ${moe_fixture} --ids 1,2,3 --ep 2 :
                   -np 1 $<TARGET_FILE:moe> eval --model ${moe_fixture}-missing --ids 1,2,3 --ep 2)
  list(APPEND moe_ep_tests cli_mpirun_np2_eval_missing_model)
  # An error on rank 1 alone, outside the collective load (a bad token id in its forward) while
  # rank 0 waits in the first MoE layer's exchange: moe's error handler aborts the job.
  add_test(NAME cli_mpirun_np2_eval_rank_error_aborts
           COMMAND ${moe_expect_failure} "rank 1 aborts the job: \\[model\\] token id 999" timeout 100 ${moe_mpirun}
                   -np 1 $<TARGET_FILE:moe> eval --model ${moe_fixture} --ids 1,2,3 --ep 2 :
                   -np 1 $<TARGET_FILE:moe> eval --model ${moe_fixture} --ids 1,2,999 --ep 2)
  list(APPEND moe_ep_tests cli_mpirun_np2_eval_rank_error_aborts)
  add_test(NAME cli_mpirun_np2_bench_layer
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/ep_bench_layer_check.sh $<TARGET_FILE:moe> ${moe_mpirun})
  list(APPEND moe_ep_tests cli_mpirun_np2_bench_layer)
  set(moe_ep_env "OMPI_MCA_btl_vader_single_copy_mechanism=none")
  if(MOE_SANITIZE STREQUAL "address")
    # LeakSanitizer reports Open MPI's own allocations at exit (MPI_Init's components, ~120 KB in
    # ~3,350 blocks, one-frame stacks in dlopen'ed plugins, no moe frame) on every rank. Leak
    # checking stays on for the same EP code in test_dist (in-process ranks); here ASan and UBSan
    # still check every access.
    list(APPEND moe_ep_env "ASAN_OPTIONS=detect_leaks=0")
  endif()
  set_tests_properties(${moe_ep_tests}
                       PROPERTIES TIMEOUT 120 LABELS "parallel;mpi"
                                  ENVIRONMENT "${moe_ep_env}")
endif()
